"""The ``analysis`` pack: microservices data analysis (seed 002): analyses, their files, generated tools, system logs.

Models in ``models.py`` (Tortoise app ``analysis``), managers in ``managers.py``, migrations in
``migrations/analysis/``, seed sets in ``seeds/analysis/`` (see ``datalayer.packs``).
"""
