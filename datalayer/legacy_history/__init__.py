"""datalayer's first migration history (one aerich app, ``models``, for every table), kept to adopt old databases.

Until the packs got histories of their own, one history built every table. A database built by it has rows
``app = 'models'`` in aerich's table for the files here. ``adopt()`` (run by ``datalayer.migrations.upgrade``)
brings such a database to this history's last file, then records each pack's initial migration as applied
(their schema is the same, table for table and index for index; ``tests/test_migration_layout.py`` proves it)
and forgets the old rows, in one transaction. No row of data is touched.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

LEGACY_APP = "models"
FILES = ("0_20261122050510_init.py", "1_20261122051204_domain_models.py", "2_20261122073842_audit_lookup_indexes.py")


def module(name: str) -> ModuleType:
    """One file of the old history, by its aerich name (``0_20261122050510_init.py``)."""
    from datalayer.migration_files import load_module

    return load_module(Path(__file__).with_name(f"m{name}"))


async def adopt() -> list[str]:
    """Move a database of the old single history onto the per-pack histories; returns what it applied.

    Call with Tortoise initialised on the migration config (``aerich.models`` loaded). A database that never
    had the old history is left alone (returns ``[]``).
    """
    from aerich.models import Aerich
    from aerich.utils import decompress_dict
    from tortoise import Tortoise
    from tortoise.transactions import in_transaction

    from datalayer.config import CONNECTION_NAME
    from datalayer.introspect import existing_tables
    from datalayer.migration_files import load_module, version_files
    from datalayer.migrations import bundled_migrations
    from datalayer.packs import PACKS

    connection = Tortoise.get_connection(CONNECTION_NAME)
    if "aerich" not in await existing_tables(connection):
        return []
    _, rows = await connection.execute_query("SELECT app, version FROM aerich")
    old = {row["version"] for row in rows if row["app"] == LEGACY_APP and row["version"] in FILES}
    if not old:
        return []
    adopted = {row["app"] for row in rows}
    done: list[str] = []
    async with in_transaction(CONNECTION_NAME) as tx:
        for name in FILES:
            if name in old:
                continue
            legacy = module(name)
            await tx.execute_script(await legacy.upgrade(tx))
            await Aerich.create(version=name, app=LEGACY_APP, content=decompress_dict(legacy.MODELS_STATE))
            done.append(f"{LEGACY_APP}/{name}")
        for pack in PACKS:
            first = version_files(bundled_migrations() / pack.label)[0]
            if pack.label not in adopted:
                state = decompress_dict(load_module(first).MODELS_STATE)
                await Aerich.create(version=first.name, app=pack.label, content=state)
                done.append(f"{pack.label}/{first.name} (adopted: its tables exist)")
        await Aerich.filter(app=LEGACY_APP, version__in=list(FILES)).delete()
    return done
