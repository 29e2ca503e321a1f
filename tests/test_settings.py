import pytest
import redis.asyncio
import typer

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
        _ = settings(DATABASE_URL=url).target
    assert "postgres://" in str(caught.value) or "sqlite" in str(caught.value)


def test_unknown_environment_is_rejected_with_the_allowed_names():
    with pytest.raises(ConfigurationError, match="development, test or production"):
        settings(DATALAYER_ENV="staging")


def test_max_connections_below_min_is_rejected():
    with pytest.raises(ConfigurationError, match=r"DB_MAX_CONNECTIONS must be >= DB_MIN_CONNECTIONS \(5\), got 2"):
        settings(DB_MIN_CONNECTIONS=5, DB_MAX_CONNECTIONS=2)


def test_sqlite_targets_describe_themselves_as_their_url():
    assert parse_database_url("sqlite:///var/data/app.sqlite3").describe() == "sqlite:///var/data/app.sqlite3"
    assert parse_database_url("sqlite://rel/app.sqlite3").describe() == "sqlite://rel/app.sqlite3"
    assert settings().target.describe() == "sqlite://datalayer.sqlite3"


def test_sqlite_urls_keep_their_path():
    assert parse_database_url("sqlite:///var/data/app.sqlite3").database == "/var/data/app.sqlite3"
    assert parse_database_url("sqlite://rel/app.sqlite3").database == "rel/app.sqlite3"
    assert parse_database_url("sqlite://:memory:").database == ":memory:"


# --- configuration that cannot fail silently: aliases, units, test names, errors that name the variable ---

READ_BY_SETTINGS = (
    "DATABASE_URL", "DB_HOST", "DATABASE_HOST", "POSTGRES_HOST", "DB_PORT", "DATABASE_PORT", "POSTGRES_PORT",
    "DB_NAME", "DATABASE_NAME", "POSTGRES_DB", "DB_USER", "DATABASE_USER", "POSTGRES_USER", "DB_PASSWORD",
    "DATABASE_PASSWORD", "POSTGRES_PASSWORD", "DATALAYER_SQLITE_PATH", "DB_MIN_CONNECTIONS", "POOL_MIN_SIZE",
    "DB_MAX_CONNECTIONS", "POOL_SIZE", "DB_IDLE_TIMEOUT", "DB_IDLE_TIMEOUT_MS", "DB_CONNECTION_TIMEOUT",
    "DB_CONNECTION_TIMEOUT_MS", "DB_RETRY_ATTEMPTS", "DB_RETRY_DELAY", "DB_RETRY_DELAY_MS", "DB_SLOW_QUERY_MS",
    "DB_LOGGING", "DB_POOL_TIMEOUT", "DB_POOL_TIMEOUT_MS", "DB_RESET_ON_RELEASE", "DB_HEALTH_LATENCY_MS",
    "POOL_TIMEOUT", "POOL_RECYCLE", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD",
    "DATALAYER_ENV", "BCRYPT_ROUNDS", "DATALAYER_KEY_WRAPPING_SECRET", "TEST_DATABASE_URL",
    "TEST_POSTGRES_HOST", "TEST_POSTGRES_PORT", "TEST_POSTGRES_DB", "TEST_POSTGRES_USER",
    "TEST_POSTGRES_PASSWORD",
)


@pytest.fixture(autouse=True)
def env(monkeypatch):
    """A clean environment for every test here (a CI image's POSTGRES_* must not leak in); returns a setter."""
    for name in READ_BY_SETTINGS:
        monkeypatch.delenv(name, raising=False)

    def set_(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_


def credentials(s: Settings) -> dict:
    """The engine's credentials, with the password as asyncpg will get it (a callable that returns it)."""
    found = dict(connection_config(s)["credentials"])
    if callable(found.get("password")):
        assert SECRET not in repr(found["password"]), "the callable never shows the password"
        found["password"] = found["password"]()
    return found


def failure(**kwargs) -> str:
    """The message a user sees; also proves it is our error and carries nothing chained."""
    with pytest.raises(ConfigurationError) as caught:
        _ = settings(**kwargs).target
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    return str(caught.value)


def test_the_seed_database_names_are_read(env):
    env(DATABASE_HOST="db.internal", DATABASE_PORT="6543", DATABASE_NAME="microservices_db",
        DATABASE_USER="svc", DATABASE_PASSWORD=SECRET)
    target = settings().target
    assert target.describe() == "postgres://svc:***@db.internal:6543/microservices_db"
    assert target.password.get_secret_value() == SECRET


def test_the_postgres_image_names_are_read(env):
    env(POSTGRES_HOST="pg", POSTGRES_PORT="5433", POSTGRES_DB="app", POSTGRES_USER="me", POSTGRES_PASSWORD=SECRET)
    cred = credentials(settings())
    assert (cred["host"], cred["port"], cred["database"], cred["user"], cred["password"]) == (
        "pg", 5433, "app", "me", SECRET)


@pytest.mark.parametrize(("alias", "value", "attribute", "expected"), [
    ("DATABASE_HOST", "h1", "db_host", "h1"), ("POSTGRES_HOST", "h2", "db_host", "h2"),
    ("DATABASE_PORT", "6000", "db_port", 6000), ("POSTGRES_PORT", "6001", "db_port", 6001),
    ("DATABASE_NAME", "n1", "db_name", "n1"), ("POSTGRES_DB", "n2", "db_name", "n2"),
    ("DATABASE_USER", "u1", "db_user", "u1"), ("POSTGRES_USER", "u2", "db_user", "u2"),
    ("POOL_SIZE", "20", "db_max_connections", 20), ("POOL_MIN_SIZE", "0", "db_min_connections", 0),
])
def test_each_alias_is_honoured(env, alias, value, attribute, expected):
    env(**{alias: value})
    assert getattr(settings(), attribute) == expected


@pytest.mark.parametrize("alias", ["DATABASE_PASSWORD", "POSTGRES_PASSWORD"])
def test_each_password_alias_is_honoured(env, alias):
    env(**{alias: SECRET}, DB_NAME="app")
    assert credentials(settings())["password"] == SECRET


def test_our_own_names_win_over_the_aliases(env):
    env(DB_HOST="ours", POSTGRES_HOST="theirs", DB_NAME="ours_db", DATABASE_NAME="theirs_db",
        DB_MAX_CONNECTIONS="7", POOL_SIZE="20")
    s = settings()
    assert (s.target.host, s.target.database, credentials(s)["maxsize"]) == ("ours", "ours_db", 7)


def test_a_link_style_port_reads_as_its_port(env):
    # Kubernetes sets POSTGRES_PORT=tcp://ip:port for a service named "postgres"; it must not break startup
    env(POSTGRES_PORT="tcp://10.0.0.7:5432", DB_NAME="app")
    assert settings().target.port == 5432


def test_seed_pool_seconds_become_our_milliseconds(env):
    env(DATABASE_URL="postgres://u@h/d", POOL_SIZE="20", POOL_TIMEOUT="30", POOL_RECYCLE="3600")
    s = settings()
    assert (s.db_pool_timeout_ms, s.db_idle_timeout_ms) == (30_000, 3_600_000)
    cred = credentials(s)
    assert (cred["maxsize"], cred["acquire_timeout"], cred["max_inactive_connection_lifetime"]) == (20, 30.0, 3600.0)


def test_fractional_seconds_and_recycle_never(env):
    env(POOL_TIMEOUT="0.25", POOL_RECYCLE="-1")
    s = settings()
    assert (s.db_pool_timeout_ms, s.db_idle_timeout_ms) == (250, 0)  # 0: asyncpg never closes idle connections


def test_our_millisecond_names_win_over_the_seconds_aliases(env):
    env(DB_POOL_TIMEOUT="2500", POOL_TIMEOUT="30", DB_IDLE_TIMEOUT_MS="1000", POOL_RECYCLE="3600")
    s = settings()
    assert (s.db_pool_timeout_ms, s.db_idle_timeout_ms) == (2500, 1000)


def test_redis_parts_build_the_url_and_hide_the_password(env):
    env(REDIS_HOST="cache", REDIS_PORT="6380", REDIS_DB="2", REDIS_PASSWORD="p@ss/word")
    s = settings()
    url = s.redis_url.get_secret_value()
    assert url == "redis://:p%40ss%2Fword@cache:6380/2"
    parsed = redis.asyncio.ConnectionPool.from_url(url).connection_kwargs  # what build_cache hands redis
    assert (parsed["host"], parsed["port"], parsed["db"], parsed["password"]) == ("cache", 6380, 2, "p@ss/word")
    for text in (repr(s), str(s), repr(s.redis_url), str(s.redis_url), repr(s.model_dump())):
        assert "p@ss/word" not in text and "p%40ss" not in text


def test_redis_url_wins_and_redis_parts_need_a_host(env):
    env(REDIS_URL="redis://127.0.0.1:6379/5", REDIS_HOST="elsewhere")
    assert settings().redis_url.get_secret_value() == "redis://127.0.0.1:6379/5"
    env(REDIS_URL="", REDIS_HOST="", REDIS_PASSWORD=SECRET)  # empty means unset: the in-process cache
    assert settings(REDIS_PORT=6390).redis_url is None
    env(REDIS_HOST="cache")
    assert settings().redis_url.get_secret_value() == f"redis://:{SECRET.replace('@', '%40')}@cache:6379/0"


def test_redis_host_alone_uses_the_default_port_and_db(env):
    env(REDIS_HOST="cache")
    assert settings().redis_url.get_secret_value() == "redis://cache:6379/0"


def test_test_database_url_replaces_the_database_in_the_test_environment(env):
    env(DATABASE_URL="postgres://u@prod-like/app", TEST_DATABASE_URL="postgres://u@localhost/app_test")
    assert settings(DATALAYER_ENV="test").target.describe() == "postgres://u@localhost:5432/app_test"
    assert settings().target.describe() == "postgres://u@prod-like:5432/app"  # development: ignored


def test_test_postgres_parts_replace_the_parts_in_the_test_environment(env):
    env(POSTGRES_HOST="pg", POSTGRES_PORT="5433", POSTGRES_DB="app", POSTGRES_USER="me", POSTGRES_PASSWORD="x",
        TEST_POSTGRES_DB="test_db", TEST_POSTGRES_USER="test_user", TEST_POSTGRES_PASSWORD=SECRET)
    cred = credentials(settings(DATALAYER_ENV="test"))
    assert (cred["host"], cred["port"], cred["database"], cred["user"], cred["password"]) == (
        "pg", 5433, "test_db", "test_user", SECRET)
    for environment in ("development", "production"):
        assert credentials(settings(DATALAYER_ENV=environment))["database"] == "app"


def test_test_names_are_ignored_outside_tests_even_when_malformed(env):
    env(TEST_POSTGRES_PORT="abc", TEST_DATABASE_URL="not a url", DATABASE_URL="postgres://u@h/d")
    assert settings(DATALAYER_ENV="production").target.database == "d"


def test_a_database_keyword_beats_the_test_names(env):
    env(DATALAYER_ENV="test", TEST_DATABASE_URL="postgres://u@elsewhere/x")
    s = Settings(DATABASE_URL="sqlite://:memory:", _env_file=None, DB_RETRY_ATTEMPTS=1)
    assert s.target.describe() == "sqlite://:memory:" and s.db_retry_attempts == 1


@pytest.mark.parametrize(("variables", "message"), [
    ({"DB_MAX_CONNECTIONS": "abc"}, "DB_MAX_CONNECTIONS must be a whole number >= 1, got 'abc'"),
    ({"DB_PORT": "x"}, "DB_PORT must be a whole number from 1 to 65535, got 'x'"),
    ({"POOL_SIZE": "-1"}, "POOL_SIZE must be a whole number >= 1, got '-1'"),
    ({"DATALAYER_ENV": "staging"}, "DATALAYER_ENV must be development, test or production, got 'staging'"),
    ({"POSTGRES_PORT": "five"}, "POSTGRES_PORT must be a whole number from 1 to 65535, got 'five'"),
    ({"POOL_TIMEOUT": "soon"}, "POOL_TIMEOUT must be a number of seconds > 0, got 'soon'"),
    ({"POOL_RECYCLE": "-5"}, "POOL_RECYCLE must be a number of seconds >= 0, or -1 for never, got '-5'"),
    ({"DB_IDLE_TIMEOUT": "1h"}, "DB_IDLE_TIMEOUT must be a whole number of milliseconds >= 0, got '1h'"),
    ({"DB_LOGGING": "maybe"}, "DB_LOGGING must be true or false, got 'maybe'"),
    ({"REDIS_HOST": "cache", "REDIS_DB": "first"}, "REDIS_DB must be a whole number >= 0, got 'first'"),
    ({"DATALAYER_ENV": "test", "TEST_POSTGRES_PORT": "x"}, "TEST_POSTGRES_PORT must be a whole number"),
    ({"POOL_MIN_SIZE": "5", "POOL_SIZE": "2"}, "POOL_SIZE must be >= POOL_MIN_SIZE (5), got '2'"),
])
def test_a_bad_environment_value_names_its_variable_and_the_expected_form(env, variables, message):
    env(**variables)
    assert message in failure()


def test_a_bad_keyword_names_the_keyword(env):
    assert "DB_MAX_CONNECTIONS must be a whole number >= 1, got 'abc'" in failure(DB_MAX_CONNECTIONS="abc")
    assert "BCRYPT_ROUNDS must be a whole number from 4 to 31, got 2" in failure(BCRYPT_ROUNDS=2)


def test_every_bad_value_is_reported_on_one_line(env):
    env(DB_PORT="x", POOL_SIZE="0")
    message = failure()
    assert "DB_PORT" in message and "POOL_SIZE" in message and "\n" not in message


def test_a_kwarg_and_an_environment_value_keep_working_together(env):
    env(POOL_SIZE="4")
    s = settings(DB_RETRY_ATTEMPTS=1)
    assert (s.db_max_connections, s.db_retry_attempts) == (4, 1)


def chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


@pytest.mark.parametrize("url", [
    f"postgres://svc:{SECRET}@db:notaport/app",       # bad port
    "postgres://svc:s3cr3t\uff03pass@db/app",         # NFKC-unsafe password: urlsplit quotes the netloc
    f"mysql://svc:{SECRET}@db/app",                   # unsupported scheme
    f"postgres://svc:{SECRET}@db",                    # no database
])
def test_a_bad_password_bearing_url_never_shows_the_password(env, url):
    env(DATABASE_URL=url, DB_PASSWORD=SECRET)
    with pytest.raises(ConfigurationError) as caught:
        _ = settings().target
    assert "DATABASE_URL" in str(caught.value)
    for error in chain(caught.value):
        for text in (str(error), repr(error)):
            assert SECRET not in text and "s3cr3t" not in text


@pytest.mark.parametrize(("variables", "variable"), [
    ({"REDIS_URL": f"http://:{SECRET}@cache:6379"}, "REDIS_URL"),
    ({"DATALAYER_ENV": "test", "TEST_DATABASE_URL": f"postgres://u:{SECRET}@h:bad/d"}, "TEST_DATABASE_URL"),
    ({"DB_PASSWORD": SECRET, "DB_PORT": "nope"}, "DB_PORT"),
])
def test_errors_about_secret_settings_name_the_variable_but_never_the_value(env, variables, variable):
    env(**variables)
    with pytest.raises(ConfigurationError) as caught:
        _ = settings().target
    assert variable in str(caught.value)
    for error in chain(caught.value):
        assert SECRET not in str(error) and SECRET not in repr(error)


def test_a_non_text_password_keyword_is_not_echoed(env):
    message = failure(DB_PASSWORD=987654321)
    assert "DB_PASSWORD" in message and "987654321" not in message


def test_production_without_a_database_is_an_error_not_a_sqlite_file(env):
    env(DATALAYER_ENV="production")
    message = failure()
    assert message.startswith("DATALAYER_ENV=production needs a database: set DATABASE_URL or DB_HOST/DB_NAME")


def test_production_with_a_database_or_an_explicit_sqlite_url_is_fine(env):
    env(DATALAYER_ENV="production", POSTGRES_HOST="pg", POSTGRES_DB="app")
    assert settings().target.describe() == "postgres://postgres@pg:5432/app"
    assert settings(DATABASE_URL="sqlite:///srv/app.sqlite3").target.describe() == "sqlite:///srv/app.sqlite3"


def test_the_cli_prints_a_bad_value_as_one_line(env, monkeypatch, tmp_path, capsys):
    from datalayer.cli.app import load_settings

    monkeypatch.chdir(tmp_path)  # no stray .env
    env(DB_MAX_CONNECTIONS="[abc]", DB_PASSWORD=SECRET)
    with pytest.raises(typer.Exit) as caught:
        load_settings()
    assert caught.value.exit_code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == ["error: DB_MAX_CONNECTIONS must be a whole number >= 1, got '[abc]'"]


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"DATABASE_URL": "postgres://u:pw-secret@h/d?sslmode=bogus"}, "sslmode"),
        ({"DATABASE_URL": "postgres://u@h/d", "DATABASE_REPLICA_URLS": "postgres://u:pw-secret@r1:5432/db,,"},
         "DATABASE_REPLICA_URLS"),
        ({"DATABASE_URL": "postgres://u@h/d", "DATABASE_REPLICA_URLS": "sqlite:///replica.sqlite3"},
         "DATABASE_REPLICA_URLS"),
        ({"DATABASE_URL": "postgres://u@h/d", "REDIS_URL": "redis+sentinel://:pw-secret@127.0.0.1:26379/my#m/0"},
         "REDIS_URL"),
    ],
)
def test_malformed_connection_settings_are_refused_when_read_naming_the_variable(variables, named):
    """Found by a new user's trial: these were accepted and failed later (a retried 'outage', a replica
    whose database was named 'db,,', a Sentinel master name cut at '#')."""
    with pytest.raises(ConfigurationError) as caught:
        loaded = settings(**variables)
        _ = loaded.target, loaded.replica_targets
    assert named in str(caught.value)
    assert "pw-secret" not in str(caught.value)
