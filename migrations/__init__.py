"""The migration histories of datalayer's packs, one folder each (``<pack>/``); shipped as ``datalayer._migrations``."""
