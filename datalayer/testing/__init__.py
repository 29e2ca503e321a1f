"""Test support for apps on datalayer: a pytest plugin and the helpers under it.

The plugin (``datalayer.testing.plugin``) is registered as a ``pytest11`` entry point, so a suite gets
``ctx`` (the app's ``DataContext`` on a database made for the session, each test isolated) by installing
datalayer and pytest-asyncio; README "Testing your app" lists its options. The helpers below are for
suites that build more themselves (a database of their own for one test, other settings).
"""

from datalayer.testing.databases import (
    ENGINES,
    PostgresServer,
    TestDatabase,
    fresh_database,
    postgres_server,
    select_engines,
    settings_for,
)
from datalayer.testing.isolation import ISOLATION_MODES, empty_tables, rolled_back

__all__ = [
    "ENGINES",
    "ISOLATION_MODES",
    "PostgresServer",
    "TestDatabase",
    "empty_tables",
    "fresh_database",
    "postgres_server",
    "rolled_back",
    "select_engines",
    "settings_for",
]
