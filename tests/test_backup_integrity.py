"""Backups a user can trust: a file is at the target only once complete (trailer: row counts and sha256); a
restore checks the whole file first and refuses, with the database unchanged, a file cut short, edited or
from an older datalayer; all tables come from one snapshot (consistent under concurrent writers); and
``restore --replace`` never deletes rows of a table the backup does not hold. Exit codes are checked through
the CLI, run the way a user runs it (``python -m datalayer`` in a subprocess). Both engines unless marked."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tortoise.transactions import in_transaction

from datalayer import introspect
from datalayer.backup import backup, restore
from datalayer.backup_file import FORMAT_VERSION, MAX_LINE_BYTES, BackupIntegrityError, open_backup
from datalayer.config import CONNECTION_NAME
from datalayer.errors import DataLayerError
from tests.conftest import SUITE_MIGRATIONS
from tests.models import Article, Author, CachedNote, Comment, Label
from tests.test_cli import REPO, all_rows, cli, ok

SECRET = "$2b$04$a-password-hash-that-must-never-be-printed"
SUITE = {"DATALAYER_MODELS": "tests.models", "DATALAYER_MIGRATIONS_DIR": SUITE_MIGRATIONS}


async def fill() -> None:
    """Two authors (with password hashes), three articles, four comments."""
    ada = await Author.create(name="Ada", email="ada@example.com", password_hash=SECRET)
    bob = await Author.create(name="Bob", email="bob@example.com", password_hash=SECRET)
    first = await Article.create(title="first", author=ada)
    second = await Article.create(title="second", author=bob)
    await Article.create(title="orphan-free", author=None)
    for article, text in ((first, "nice"), (first, "agreed"), (second, "hm"), (second, "ok")):
        await Comment.create(article=article, text=text)


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def sha256_of(lines: list[str]) -> str:
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def restore_cli(url: str, path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return cli(url, "restore", *options, str(path), **SUITE)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def partial_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name)


async def test_a_backup_ends_with_a_trailer_and_restores_identical_rows(ctx, backend, tmp_path):
    await fill()
    target = tmp_path / "backup.jsonl"

    written = await backup(target, ctx.models, ctx.settings)

    lines = lines_of(target)
    header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    assert header["format_version"] == FORMAT_VERSION == trailer["format_version"] == 3
    assert trailer["tables"]["test_author"] == 2 and trailer["tables"]["test_comment"] == 4
    assert trailer["tables"] == written and trailer["rows"] == len(lines) - 2
    assert trailer["sha256"] == sha256_of(lines[:-1])
    assert oct(target.stat().st_mode & 0o777) == "0o600"  # password hashes: the owner's eyes only
    assert partial_files(tmp_path) == []

    before = await all_rows(backend.url)
    restored = await restore(target, ctx.models, ctx.settings, replace=True)
    assert restored == {table: n for table, n in written.items() if n}
    assert await all_rows(backend.url) == before


def cut_mid_table(lines: list[str]) -> list[str]:
    return lines[:-4]  # at a line boundary: the last comments and the trailer are gone


def header_only(lines: list[str]) -> list[str]:
    return lines[:1]


def line_edited(lines: list[str]) -> list[str]:
    edited = list(lines)
    index = next(i for i, line in enumerate(lines) if '"table": "test_author"' in line)
    edited[index] = lines[index].replace('"Ada"', '"Eve"').replace('"Bob"', '"Eve"')
    assert edited[index] != lines[index]
    return edited


def line_removed(lines: list[str]) -> list[str]:
    index = next(i for i, line in enumerate(lines) if '"table": "test_comment"' in line)
    return lines[:index] + lines[index + 1:]


def trailer_missing(lines: list[str]) -> list[str]:
    return lines[:-1]


def no_tables(lines: list[str]) -> list[str]:
    header = json.loads(lines[0])
    header["tables"] = {}
    return [json.dumps(header) + "\n", lines[-1]]


def older_version(lines: list[str]) -> list[str]:
    header = json.loads(lines[0])
    header["format_version"] = 2
    return [json.dumps(header) + "\n", *lines[1:-1]]


DAMAGES = {  # name: (how the file is spoilt, what the error says)
    "cut-at-a-line-boundary": (cut_mid_table, "has no trailer after line"),
    "header-only": (header_only, "has no trailer after line 1"),
    "line-edited": (line_edited, "the rows of table test_author differ from what was written"),
    "trailer-missing": (trailer_missing, "the backup is incomplete"),
    "line-removed": (line_removed, "table test_comment has 3 rows, its trailer says 4"),
    "no-tables": (no_tables, "its header lists no tables"),
    "version-2-file": (older_version, "written by an older datalayer (backup format 2)"),
}
THROUGH_THE_CLI = ("cut-at-a-line-boundary", "header-only", "line-edited", "trailer-missing")


def assert_says_only(message: str, expected: str, damaged: Path) -> None:
    assert expected in message and str(damaged) in message
    assert SECRET not in message and "Eve" not in message and "nice" not in message  # no row content


async def backup_with_rows(ctx, folder: Path) -> Path:
    await fill()
    good = folder / "good.jsonl"
    await backup(good, ctx.models, ctx.settings)
    return good


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_restore_refuses_a_damaged_file_and_changes_nothing_even_with_replace(ctx, backend, tmp_path, damage):
    good = await backup_with_rows(ctx, tmp_path)
    spoil, expected = DAMAGES[damage]
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text("".join(spoil(lines_of(good))))
    before = await all_rows(backend.url)

    with pytest.raises(BackupIntegrityError) as caught:
        await restore(damaged, ctx.models, ctx.settings, replace=True)

    assert_says_only(str(caught.value), expected, damaged)
    assert await all_rows(backend.url) == before  # --replace emptied nothing
    assert sum(map(len, before.values())) >= 9


async def test_the_cli_refuses_a_damaged_file_with_one_line_and_exit_code_1(ctx, backend, tmp_path):
    good = await backup_with_rows(ctx, tmp_path)
    damaged = {name: tmp_path / f"{name}.jsonl" for name in THROUGH_THE_CLI}
    for name, path in damaged.items():
        path.write_text("".join(DAMAGES[name][0](lines_of(good))))
    before = await all_rows(backend.url)

    results = await asyncio.gather(*(asyncio.to_thread(restore_cli, backend.url, path, "--replace")
                                     for path in damaged.values()))  # side by side: each is a Python start-up

    for (name, path), result in zip(damaged.items(), results, strict=True):
        assert_says_only(one_error_line(result), DAMAGES[name][1], path)
    assert await all_rows(backend.url) == before  # --replace emptied nothing


async def test_the_library_error_names_the_file_and_the_table(ctx, tmp_path):
    await fill()
    good = tmp_path / "good.jsonl"
    await backup(good, ctx.models, ctx.settings)
    damaged = tmp_path / "edited.jsonl"
    damaged.write_text("".join(line_removed(lines_of(good))))

    with pytest.raises(BackupIntegrityError) as caught:
        await restore(damaged, ctx.models, ctx.settings, replace=True)

    assert (caught.value.file, caught.value.table) == (damaged, "test_comment")
    assert caught.value.fields == ["file"]
    assert await Comment.all().count() == 4


async def test_a_file_changed_after_its_check_is_refused_when_read(ctx, tmp_path):
    good = await backup_with_rows(ctx, tmp_path)
    with open_backup(good) as checked:
        with good.open("r+b") as file:  # the same file, edited in place between the check and the load
            file.seek(len(lines_of(good)[0]) + 20)
            file.write(b"~")
        with pytest.raises(BackupIntegrityError, match="changed while it was being restored"):
            list(checked.rows())


async def test_a_failing_backup_leaves_the_previous_file_and_no_partial_file(ctx, tmp_path):
    await fill()
    target = tmp_path / "nightly.jsonl"
    target.write_text("yesterday's backup\n")

    def disk_trouble(table: str, rows: int) -> None:
        if table == "test_article":
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        await backup(target, ctx.models, ctx.settings, progress=disk_trouble)

    assert target.read_text() == "yesterday's backup\n"
    assert partial_files(tmp_path) == []
    await backup(target, ctx.models, ctx.settings)  # and a backup that completes replaces it
    assert json.loads(lines_of(target)[-1])["tables"]["test_comment"] == 4


async def fill_labels(rows: int) -> None:
    await Label.bulk_create([Label(name=f"label {i:06d} " + "x" * 30, colour="x" * 20) for i in range(rows)], batch_size=2000)


def start_backup(url: str, target: Path) -> subprocess.Popen[str]:
    environ = {**{k: v for k, v in os.environ.items() if k != "DATALAYER_MIGRATIONS_DIR"}, "DATABASE_URL": url,
               "DATALAYER_ENV": "test", "DB_RETRY_ATTEMPTS": "1", "COLUMNS": "200", **SUITE}
    return subprocess.Popen([sys.executable, "-m", "datalayer", "backup", str(target)], cwd=REPO, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_mid_way(process: subprocess.Popen[str], target: Path, sig: signal.Signals) -> tuple[int, str]:
    """Send ``sig`` once the backup's partial file holds rows; returns (exit code, stderr)."""
    partial = target.with_name(f".{target.name}.partial-{process.pid}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if partial.exists() and partial.stat().st_size > 64 * 1024:
            process.send_signal(sig)
            break
        time.sleep(0.005)
    else:
        process.kill()
        process.communicate(timeout=30)
        pytest.fail("the backup ended (or took over 60 s) before it could be stopped mid-way")
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


async def test_a_backup_killed_or_interrupted_mid_way_never_leaves_a_file_at_the_target(ctx, backend, tmp_path):
    await fill_labels(10_000)
    target = tmp_path / "nightly.jsonl"
    target.write_text("yesterday's backup\n")

    killed = start_backup(backend.url, target)
    code, _ = await asyncio.to_thread(stop_mid_way, killed, target, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert target.read_text() == "yesterday's backup\n"  # replaced only by a complete backup
    assert partial_files(tmp_path) == [f".nightly.jsonl.partial-{killed.pid}"]  # named for what it is

    target.unlink()  # no previous file this time
    code, stderr = await asyncio.to_thread(stop_mid_way, start_backup(backend.url, target), target, signal.SIGINT)
    assert (code, stderr.strip()) == (130, "error: interrupted")
    assert not target.exists()
    assert partial_files(tmp_path) == [f".nightly.jsonl.partial-{killed.pid}"]  # Ctrl-C cleaned up its own


@pytest.mark.postgres_only  # SQLite has one connection: writers wait for the backup's transaction to end
async def test_a_backup_under_concurrent_writers_restores_into_a_fresh_database(
        ctx, backend, empty_database_url, tmp_path):
    authors = [await Author.create(name=f"author {i}", email=f"a{i}@example.com") for i in range(3)]
    await Article.bulk_create([Article(title=f"old {i}", author=authors[i % 3]) for i in range(3000)], batch_size=1000)
    target = tmp_path / "busy.jsonl"
    running, done = asyncio.Event(), asyncio.Event()
    pairs_during_backup = 0

    async def writer(number: int) -> None:
        nonlocal pairs_during_backup
        deadline = time.monotonic() + 60
        for i in range(5000):
            if done.is_set() or time.monotonic() > deadline:
                return
            async with in_transaction(CONNECTION_NAME):
                article = await Article.create(title=f"new {number}-{i}", author=authors[number])
                await Comment.create(article=article, text=f"comment {number}-{i}")
            if running.is_set():
                pairs_during_backup += 1
            await asyncio.sleep(0)

    async def take_backup() -> None:
        await asyncio.sleep(0.05)
        running.set()
        try:
            await backup(target, ctx.models, ctx.settings)
        finally:
            running.clear()
            done.set()

    await asyncio.gather(take_backup(), *(writer(n) for n in range(3)))

    assert pairs_during_backup > 0, "no writer committed while the backup ran: the test proved nothing"
    rows = [json.loads(line) for line in lines_of(target)[1:-1]]
    articles = {r["row"]["id"] for r in rows if r["table"] == "test_article"}
    comments = [r["row"]["article_id"] for r in rows if r["table"] == "test_comment"]
    assert comments and all(article in articles for article in comments)

    ok(cli(empty_database_url, "upgrade", **SUITE))
    ok(restore_cli(empty_database_url, target))
    restored = await all_rows(empty_database_url)
    assert len(restored["test_comment"]) == len(comments) and len(restored["test_article"]) == len(articles)


async def test_replace_refuses_to_touch_rows_of_a_table_outside_the_backup(ctx, backend, tmp_path):
    await fill()
    id_type = "UUID" if backend.is_postgres else "CHAR(36)"
    client = introspect.connection()
    await client.execute_script(f'CREATE TABLE app_order (id INTEGER PRIMARY KEY, author_id {id_type} '
                                'REFERENCES test_author (id) ON DELETE CASCADE)')
    try:
        ada = await Author.get(name="Ada")
        await client.execute_script(f"INSERT INTO app_order (id, author_id) VALUES (1, '{ada.id}')")
        target = tmp_path / "backup.jsonl"
        await backup(target, ctx.models, ctx.settings)
        before = await all_rows(backend.url)

        line = one_error_line(restore_cli(backend.url, target, "--replace"))

        assert "app_order (its author_id refers to test_author)" in line and "does not hold" in line
        assert await all_rows(backend.url) == before  # app_order's row and every author are still there

        await client.execute_script("UPDATE app_order SET author_id = NULL")  # nothing refers: allowed
        await restore(target, ctx.models, ctx.settings, replace=True)
        assert await all_rows(backend.url) == before | {"app_order": [(1, None)]}
    finally:
        await client.execute_script("DROP TABLE IF EXISTS app_order")


async def test_replace_refuses_when_a_loaded_model_outside_the_backup_refers_to_it(ctx, tmp_path):
    await fill()
    ada = await Author.get(name="Ada")
    await CachedNote.create(title="keep me", author=ada)
    target = tmp_path / "authors-only.jsonl"
    await backup(target, [Author, Article, Comment], ctx.settings)  # a process that did not load CachedNote

    with pytest.raises(DataLayerError, match=r"test_cached_note \(its author_id refers to test_author\)"):
        await restore(target, ctx.models, ctx.settings, replace=True)

    assert await CachedNote.filter(author=ada).count() == 1 and await Author.all().count() == 2


async def test_a_line_longer_than_any_backup_writes_is_refused_before_it_is_read_whole(ctx, tmp_path):
    """A new user's trial: one 300 MB line took ~950 MB to refuse. Lines are read at most MAX_LINE_BYTES + 1
    at a time, so such a file is refused at that cost."""
    await fill()
    huge = tmp_path / "one-long-line.jsonl"
    with huge.open("wb") as out:
        out.write(b'{"format": "datalayer-backup", "pad": "')
        out.write(b"x" * (MAX_LINE_BYTES + 10))
        out.write(b'"}\n')

    with pytest.raises(BackupIntegrityError, match="longer than 64 MiB") as caught:
        await restore(huge, ctx.models, ctx.settings, replace=True)

    assert caught.value.line == 1
    assert await Comment.all().count() == 4
