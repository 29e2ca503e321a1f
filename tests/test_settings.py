import pytest

from datalayer import ConfigurationError, Settings
from datalayer.config import connection_config
from datalayer.settings import parse_database_url

SECRET = "s3cr3t-p@ss"


def settings(**env) -> Settings:
    return Settings(_env_file=None, **env)


def test_nothing_set_means_the_embedded_sqlite_file():
    target = settings().target
    assert target.engine == "sqlite"
    assert target.database == "datalayer.sqlite3"


def test_db_parts_build_a_postgres_target():
    target = settings(DB_HOST="db", DB_PORT=6543, DB_NAME="app", DB_USER="svc", DB_PASSWORD=SECRET).target
    assert (target.engine, target.host, target.port, target.database, target.user) == ("postgres", "db", 6543, "app", "svc")
    assert target.password.get_secret_value() == SECRET


def test_database_url_wins_and_decodes_the_password():
    target = settings(DATABASE_URL="postgresql://svc:s3cr3t-p%40ss@db.internal:5433/app", DB_NAME="other").target
    assert (target.host, target.port, target.database) == ("db.internal", 5433, "app")
    assert target.password.get_secret_value() == SECRET


def test_password_never_appears_in_reprs_or_descriptions():
    s = settings(DATABASE_URL=f"postgres://svc:{SECRET}@db:5432/app", DB_PASSWORD=SECRET)
    for text in (repr(s), str(s), repr(s.target), str(s.target), s.target.describe(), repr(s.model_dump())):
        assert SECRET not in text
    assert s.target.describe() == "postgres://svc:***@db:5432/app"


@pytest.mark.parametrize("flag", ["ssl=false", "sslmode=disable", "ssl=0", ""])
def test_ssl_false_in_the_url_really_turns_ssl_off(flag):
    # asyncpg would read ?ssl=false as bool("false") == True and demand SSL; we do not pass it on
    credentials = connection_config(settings(DATABASE_URL=f"postgres://u@h:5432/d?{flag}"))["credentials"]
    assert "ssl" not in credentials


def test_sslmode_require_is_passed_to_the_driver():
    credentials = connection_config(settings(DATABASE_URL="postgres://u@h:5432/d?sslmode=require"))["credentials"]
    assert credentials["ssl"] == "require"


def test_pool_and_timeouts_reach_the_driver_config():
    credentials = connection_config(settings(
        DATABASE_URL="postgres://u@h/d", DB_MIN_CONNECTIONS=2, DB_MAX_CONNECTIONS=7,
        DB_IDLE_TIMEOUT=30000, DB_CONNECTION_TIMEOUT=1500,
    ))["credentials"]
    assert (credentials["minsize"], credentials["maxsize"]) == (2, 7)
    assert credentials["max_inactive_connection_lifetime"] == 30.0
    assert credentials["timeout"] == 1.5


@pytest.mark.parametrize("url", ["mysql://u@h/d", "postgres://u@/d", "postgres://u@h", "sqlite://"])
def test_unusable_urls_raise_a_configuration_error_that_says_the_fix(url):
    with pytest.raises(ConfigurationError) as caught:
        settings(DATABASE_URL=url).target
    assert "postgres://" in str(caught.value) or "sqlite" in str(caught.value)


def test_unknown_environment_is_rejected_with_the_allowed_names():
    with pytest.raises(ValueError, match="development, test or production"):
        settings(DATALAYER_ENV="staging")


def test_max_connections_below_min_is_rejected():
    with pytest.raises(ValueError, match="DB_MAX_CONNECTIONS"):
        settings(DB_MIN_CONNECTIONS=5, DB_MAX_CONNECTIONS=2)


def test_sqlite_targets_describe_themselves_as_their_url():
    assert parse_database_url("sqlite:///var/data/app.sqlite3").describe() == "sqlite:///var/data/app.sqlite3"
    assert parse_database_url("sqlite://rel/app.sqlite3").describe() == "sqlite://rel/app.sqlite3"
    assert settings().target.describe() == "sqlite://datalayer.sqlite3"


def test_sqlite_urls_keep_their_path():
    assert parse_database_url("sqlite:///var/data/app.sqlite3").database == "/var/data/app.sqlite3"
    assert parse_database_url("sqlite://rel/app.sqlite3").database == "rel/app.sqlite3"
    assert parse_database_url("sqlite://:memory:").database == ":memory:"
