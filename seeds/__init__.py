"""The seed sets of datalayer's packs, one folder each (``<pack>/<environment>.json``); shipped as ``datalayer._seeds``."""
