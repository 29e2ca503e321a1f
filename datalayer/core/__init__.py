"""The ``core`` pack: audit log, cache entries, users, sessions and API keys: what every app needs.

Models in ``models.py`` (Tortoise app ``core``), managers in ``managers.py``, migrations in
``migrations/core/``, seed sets in ``seeds/core/`` (see ``datalayer.packs``).
"""
