"""The ``characters`` pack: the character creation platform (seed 003): character templates and characters.

Models in ``models.py`` (Tortoise app ``characters``), managers in ``managers.py``, migrations in
``migrations/characters/``, seed sets in ``seeds/characters/`` (see ``datalayer.packs``).
"""
