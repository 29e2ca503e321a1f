"""What a user gets wrong, run the way a user runs it (``python -m datalayer`` in a subprocess): every user
error is one line on stderr and a non-zero exit, never a traceback; brackets in messages survive; empty
migrations roll back; a history with two files numbered alike is refused; ``downgrade`` is guarded in
production; a seed row naming an unknown field is a clear error. Data tests run on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datalayer.errors import ConfigurationError
from datalayer.migration_files import (
    EMPTY_DOWNGRADE,
    check_numbering,
    downgrade_refusal,
    render,
    version_files,
)
from tests.test_cli import all_rows, cli, ok


@pytest.fixture
def url(empty_database_url: str) -> str:
    return empty_database_url


def one_line_error(result, *expected: str, code: int | None = None) -> str:
    """The single stderr line of a failed command (asserting there is exactly one, and no traceback)."""
    assert result.returncode != 0, result.stdout + result.stderr
    if code is not None:
        assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def app_history(app_folder: Path) -> Path:
    return app_folder / "migrations" / "models"


# -- a. one line for every user error --------------------------------------------------------------------

COMMANDS = [("history",), ("upgrade",), ("downgrade",), ("migrate", "x"), ("check-migrations",), ("init",),
            ("status",), ("seed",), ("health",), ("backup", "out.jsonl")]


@pytest.fixture
def broken_app(tmp_path: Path) -> Path:
    """An app folder whose model modules fail on import the ways user code does."""
    app = tmp_path / "broken_app"
    app.mkdir()
    (app / "raises_runtime.py").write_text('raise RuntimeError("settings not configured")\n')
    (app / "raises_value.py").write_text('raise ValueError("bad constant")\n')
    (app / "pyproject.toml").write_text('[project]\nname = "broken"\n')
    return app


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATALAYER_PROJECT": "/no/such/pyproject.toml"}, ("DATALAYER_PROJECT",)),
        ({"DATALAYER_MODELS": "raises_runtime"}, ("'raises_runtime'", "RuntimeError", "settings not configured")),
        ({"DATALAYER_MODELS": "raises_value"}, ("'raises_value'", "ValueError", "bad constant")),
        ({"DATALAYER_MODELS": ".models"}, ("'.models'",)),
        ({"DATALAYER_MODELS": "no_such_module"}, ("'no_such_module'",)),
    ],
    ids=["missing-project", "runtime-error", "value-error", "relative-module", "missing-module"],
)
def test_configuration_errors_are_one_line_in_every_command(broken_app, tmp_path, env, expected):
    url = f"sqlite://{tmp_path / 'never.sqlite3'}"
    for args in COMMANDS:
        one_line_error(cli(url, *args, cwd=broken_app, **env), *expected)
    assert not (tmp_path / "never.sqlite3").exists()


def test_square_brackets_in_messages_are_printed(broken_app, tmp_path):
    url = f"sqlite://{tmp_path / 'never.sqlite3'}"
    line = one_line_error(cli(url, "history", cwd=broken_app, DATALAYER_MODELS="no_such_module"))
    assert "(or [tool.datalayer] models, --models)" in line

    folder = tmp_path / "[reports]"
    line = one_line_error(cli(url, "backup", str(folder / "missing" / "b.jsonl"), cwd=broken_app))
    assert f"the folder {folder / 'missing'} does not exist" in line


async def test_backup_to_a_folder_a_missing_folder_or_a_full_disk_is_one_line(url, tmp_path):
    ok(cli(url, "upgrade"))
    ok(cli(url, "seed"))

    one_line_error(cli(url, "backup", str(tmp_path)), f"cannot write the backup to {tmp_path}", "folder")
    missing = tmp_path / "no" / "such" / "backup.jsonl"
    one_line_error(cli(url, "backup", str(missing)), f"the folder {missing.parent} does not exist")
    if Path("/dev/full").exists():
        one_line_error(cli(url, "backup", "/dev/full"), "cannot write the backup to /dev/full", "No space left")
    one_line_error(cli(url, "restore", str(tmp_path / "none.jsonl")), "no such file")
    one_line_error(cli(url, "restore", str(tmp_path)), "folder")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".jsonl") == []


def test_a_long_migration_name_is_refused_clearly(app_folder):
    url = f"sqlite://{app_folder / 'never.sqlite3'}"
    before = sorted(p.name for p in app_history(app_folder).iterdir())
    line = one_line_error(cli(url, "migrate", "a" * 260, "--empty", cwd=app_folder), "too long", "100")
    assert "a" * 101 not in line
    assert sorted(p.name for p in app_history(app_folder).iterdir()) == before
    assert "Created migrations/models/2_" in ok(cli(url, "migrate", "b" * 100, "--empty", cwd=app_folder))


async def test_a_seed_row_naming_an_unknown_field_is_a_seed_error_for_new_and_existing_rows(url, app_folder):
    ok(cli(url, "upgrade", cwd=app_folder))
    ok(cli(url, "seed", cwd=app_folder))  # the app's test set: notebooks "Runbook" and "Ideas" of alice and bob
    before = await all_rows(url)
    owner = {"email": "alice@test.example"}
    for title in ("Runbook", "Brand new"):  # an existing row, then a new one
        seed = app_folder / f"stale_{title.split()[0].lower()}.json"
        seed.write_text(json.dumps({"records": [{"model": "Notebook", "key": ["owner", "title"],
                                                 "rows": [{"owner": owner, "title": title, "city": "Paris"}]}]}))
        for extra in ((), ("--force",)):
            one_line_error(cli(url, "seed", "--env", str(seed), *extra, cwd=app_folder),
                           f"seed file {seed.name}", "Notebook", "'city'", code=1)
    assert await all_rows(url) == before

    stale_key = app_folder / "stale_key.json"
    stale_key.write_text(json.dumps({"records": [{"model": "Notebook", "key": ["owner", "city"],
                                                  "rows": [{"owner": owner, "city": "Paris"}]}]}))
    for extra in ((), ("--clear",)):
        one_line_error(cli(url, "seed", "--env", str(stale_key), *extra, cwd=app_folder),
                       "seed file stale_key.json", "Notebook", "'city'")
    assert await all_rows(url) == before


def test_a_pool_minimum_above_the_default_maximum_names_both_variables(tmp_path):
    url = f"sqlite://{tmp_path / 'never.sqlite3'}"
    one_line_error(cli(url, "status", POOL_MIN_SIZE="20"), "POOL_MIN_SIZE=20", "DB_MAX_CONNECTIONS", "10")
    one_line_error(cli(url, "status", POOL_MIN_SIZE="20", POOL_SIZE="5"), "POOL_SIZE", "POOL_MIN_SIZE", "20", "5")


# -- c. empty migrations roll back; the refusal names the file and why ----------------------------------------


async def test_an_empty_migration_rolls_back_and_a_file_without_downgrade_sql_is_named(url, app_folder):
    ok(cli(url, "upgrade", cwd=app_folder))
    created = ok(cli(url, "migrate", "data_fix", "--empty", cwd=app_folder))
    path = next(app_history(app_folder).glob("2_*_data_fix.py"))
    assert path.name in created and "SQL that undoes UPGRADE" in path.read_text()
    assert "this migration's SQL" in path.read_text()
    assert f"Applied models/{path.name}" in ok(cli(url, "upgrade", cwd=app_folder))
    before = await all_rows(url)

    assert f"Rolled back models/{path.name}" in ok(cli(url, "downgrade", cwd=app_folder))
    assert await all_rows(url) == before
    assert f"Applied models/{path.name}" in ok(cli(url, "upgrade", cwd=app_folder))

    text = path.read_text()
    path.write_text(text[:text.index("DOWNGRADE = {")] + 'DOWNGRADE = {"postgres": "", "sqlite": ""}\n'
                    + text[text.index("# Every partial unique index"):])
    one_line_error(cli(url, "downgrade", cwd=app_folder), f"models/{path.name}", "no downgrade SQL")
    one_line_error(cli(url, "downgrade", "--app", "models", "--version", "1", cwd=app_folder),
                   f"models/{path.name}", "no downgrade SQL")
    listed = [line for line in ok(cli(url, "history", cwd=app_folder)).splitlines() if path.name in line]
    assert len(listed) == 1 and "applied" in listed[0]  # nothing was rolled back

    line = one_line_error(cli(url, "downgrade", "--app", "agent", cwd=app_folder), "initial migration of agent")
    assert "agent/0_" in line


def test_empty_downgrade_and_refusals_of_migration_files(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "0_20250101000000_init.py").write_text(render({"sqlite": "SELECT 1"}, {}, (), "state"))
    (folder / "1_20250102000000_fill.py").write_text(render({}, dict.fromkeys(("postgres", "sqlite"), EMPTY_DOWNGRADE), (), "state"))
    (folder / "2_20250103000000_half.py").write_text(render({}, {"postgres": "SELECT 1"}, (), "state"))
    assert "initial migration" in downgrade_refusal(folder / "0_20250101000000_init.py", "sqlite")
    assert downgrade_refusal(folder / "1_20250102000000_fill.py", "postgres") is None
    assert downgrade_refusal(folder / "2_20250103000000_half.py", "postgres") is None
    assert "no downgrade SQL for sqlite" in downgrade_refusal(folder / "2_20250103000000_half.py", "sqlite")
    (folder / "3_20250104000000_note.py").write_text(render({}, {"sqlite": "-- undo by hand\n;"}, (), "state"))
    assert "no downgrade SQL" in downgrade_refusal(folder / "3_20250104000000_note.py", "sqlite")
    assert [p.name[0] for p in version_files(folder)] == ["0", "1", "2", "3"]


# -- d. two files with the same number -------------------------------------------------------------------


async def test_two_migrations_with_the_same_number_are_refused_by_every_command(url, app_folder):
    history = app_history(app_folder)
    phone = next(history.glob("1_*.py"))
    email = history / "1_20990101000000_add_email.py"
    email.write_text(phone.read_text())

    for args in (("migrate", "next"), ("upgrade",), ("check-migrations",), ("history",), ("downgrade",)):
        one_line_error(cli(url, *args, cwd=app_folder), phone.name, email.name, "rename", "2_20990101000000_add_email.py")
    assert await all_rows(url) == {}  # upgrade refused before touching the database
    assert not list(history.glob("2_*.py"))  # migrate wrote nothing

    email.unlink()
    assert "Applied models/1_" in ok(cli(url, "upgrade", cwd=app_folder))


def test_check_numbering_names_every_clash():
    files = [Path("m/0_1_init.py"), Path("m/1_2_a.py"), Path("m/2_3_add_phone.py"), Path("m/2_4_add_email.py")]
    with pytest.raises(ConfigurationError) as caught:
        check_numbering(files)
    assert "2_3_add_phone.py and 2_4_add_email.py" in str(caught.value) and "3_4_add_email.py" in str(caught.value)
    check_numbering(files[:3])


# -- e. downgrade in production ----------------------------------------------------------------------------


async def test_downgrade_refuses_in_production_without_the_flag(url, app_folder):
    ok(cli(url, "upgrade", cwd=app_folder))
    before = ok(cli(url, "history", cwd=app_folder))

    one_line_error(cli(url, "downgrade", cwd=app_folder, DATALAYER_ENV="production"), "--yes-i-mean-production",
                   code=2)
    assert ok(cli(url, "history", cwd=app_folder)) == before

    done = ok(cli(url, "downgrade", "--yes-i-mean-production", cwd=app_folder, DATALAYER_ENV="production"))
    assert "Rolled back models/1_" in done
