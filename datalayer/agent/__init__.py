"""The ``agent`` pack: the AI code agent (seed 001): parsed requests, project analyses, tasks, code files, configurations.

Models in ``models.py`` (Tortoise app ``agent``), managers in ``managers.py``, migrations in
``migrations/agent/``, seed sets in ``seeds/agent/`` (see ``datalayer.packs``).
"""
