"""The ``ml`` pack: the ML model upload API (seed 000): ML models, stored models, endpoints, usage.

Models in ``models.py`` (Tortoise app ``ml``), managers in ``managers.py``, migrations in
``migrations/ml/``, seed sets in ``seeds/ml/`` (see ``datalayer.packs``).
"""
