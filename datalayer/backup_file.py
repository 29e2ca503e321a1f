"""The backup file: a header line, one JSON line per row, and a trailer line that proves the file is whole.

Written to a temporary file beside the target (``.<name>.partial-<pid>``), flushed to disk and renamed into
place only once the trailer is written: an interrupted backup never leaves a file at the target path, and an
older file there is replaced only by a complete one. The trailer holds the row count and a sha256 of every
table and a sha256 of every byte before it; ``open_backup`` checks all of it in a first streaming pass, so a
file cut short, edited or missing lines is refused before anything reads its rows.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from datalayer.errors import ValidationError

FORMAT = "datalayer-backup"
FORMAT_VERSION = 3  # 1: "schema" was one history's last file; 2: {app label: its last file}; 3: a trailer ends it
NEW_FILE_MODE = 0o600  # rows hold password hashes: a new backup is readable by its owner only


class BackupIntegrityError(ValidationError):
    """A backup file is incomplete, altered or not a backup at all; nothing was restored from it.

    ``file`` is the path; ``line`` (1-based) and ``table`` say where, when known. The message never quotes a
    row (rows hold password hashes).
    """

    def __init__(self, file: Path, problem: str, *, line: int | None = None, table: str | None = None) -> None:
        self.file, self.line, self.table = file, line, table
        where = f" line {line}" if line is not None else ""
        super().__init__({"file": f"{file}{where}: {problem}"})


#: the longest line a backup holds (one row as JSON): restore reads a line at a time, so this bounds its memory
MAX_LINE_BYTES = 64 * 1024 * 1024


def _line(item: dict[str, Any]) -> bytes:
    return (json.dumps(item) + "\n").encode()


def _bounded_lines(source: IO[bytes], path: Path) -> Iterator[bytes]:
    """The lines of ``source``, refusing one longer than ``MAX_LINE_BYTES`` before it is read whole."""
    number = 1
    while line := source.readline(MAX_LINE_BYTES + 1):
        if len(line) > MAX_LINE_BYTES:
            raise BackupIntegrityError(path, f"a line longer than {MAX_LINE_BYTES // 2**20} MiB: not a line a "
                                       "datalayer backup writes", line=number)
        yield line
        number += 1


def _trailer_of(item: Any) -> dict[str, Any] | None:
    return item if isinstance(item, dict) and item.get("end") == FORMAT else None


@dataclass
class BackupWriter:
    """Writes the lines of one backup and keeps what its trailer needs (rows and sha256 per table)."""

    out: IO[bytes]
    tables: list[str]
    counts: dict[str, int] = field(init=False)
    _digest: Any = field(init=False, default_factory=hashlib.sha256)
    _table_digests: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = dict.fromkeys(self.tables, 0)
        self._table_digests = {table: hashlib.sha256() for table in self.tables}

    def _write(self, line: bytes) -> None:
        self.out.write(line)
        self._digest.update(line)

    def header(self, header: dict[str, Any]) -> None:
        self._write(_line({"format": FORMAT, "format_version": FORMAT_VERSION, **header}))

    def row(self, table: str, row: dict[str, Any]) -> None:
        """One row of ``table`` (a table named in ``tables``), values already JSON-ready.

        Raises:
            ValidationError: the row is longer than ``MAX_LINE_BYTES`` as JSON (restore could not read it back).
        """
        line = _line({"table": table, "row": row})
        if len(line) > MAX_LINE_BYTES:
            raise ValidationError({"row": f"a row of {table} is {len(line) // 2**20} MiB as JSON; backups hold rows "
                                          f"up to {MAX_LINE_BYTES // 2**20} MiB (use pg_dump for this table)"})
        self._write(line)
        self._table_digests[table].update(line)
        self.counts[table] += 1

    def trailer(self) -> None:
        self.out.write(_line({"end": FORMAT, "format_version": FORMAT_VERSION, "tables": self.counts,
                              "table_sha256": {t: d.hexdigest() for t, d in self._table_digests.items()},
                              "rows": sum(self.counts.values()), "sha256": self._digest.hexdigest()}))


def partial_name(target: Path) -> Path:
    """Where the backup of ``target`` is written until it is complete (same folder, so same filesystem)."""
    return target.with_name(f".{target.name}.partial-{os.getpid()}")


@contextmanager
def writing_backup(path: Path, tables: list[str]) -> Iterator[BackupWriter]:
    """``with writing_backup(path, tables) as out:`` write the header and rows; the trailer is added and the
    file renamed onto ``path`` when the block ends without an exception.

    On any exception (``KeyboardInterrupt`` included) the temporary file is removed and ``path`` is left as it
    was. A target that exists and is not a regular file (a device, a pipe) is written in place: it cannot be
    renamed over. A symbolic link is followed: the file it points to is replaced.

    Raises:
        OSError: the folder cannot be written, the disk is full (``filename`` names the file).
    """
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    target, temporary = path, None
    if path.exists() and not path.is_file():
        out = path.open("wb")
    else:
        target = Path(os.path.realpath(path))
        temporary = partial_name(target)
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else NEW_FILE_MODE
        with suppress(FileNotFoundError):
            temporary.unlink()  # left by a killed run of a process with the same id
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with suppress(OSError):
            os.fchmod(descriptor, mode)  # exactly the replaced file's mode, whatever the umask
        out = os.fdopen(descriptor, "wb")
    try:
        with out:
            writer = BackupWriter(out, tables)
            yield writer
            writer.trailer()
            out.flush()
            if temporary is not None:
                os.fsync(out.fileno())
        if temporary is not None:
            os.replace(temporary, target)
            _sync_folder(target.parent)
    except BaseException:
        if temporary is not None:
            with suppress(OSError):
                temporary.unlink()
        raise


def _sync_folder(folder: Path) -> None:
    """Make the rename durable (best effort: not every filesystem lets a folder be opened and synced)."""
    with suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def read_header(path: Path) -> dict[str, Any]:
    """The first line of a backup file (not verified: ``open_backup`` checks the whole file).

    Raises:
        BackupIntegrityError: the first line is not a datalayer backup header.
        OSError: the file cannot be read.
    """
    with path.open("rb") as source:
        return _header(next(_bounded_lines(source, path), b""), path)


def _header(line: bytes, path: Path) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise BackupIntegrityError(path, "not a datalayer backup (no header line)", line=1)
    return header


@dataclass
class VerifiedBackup:
    """A backup file checked whole; ``rows()`` reads it again, checking it did not change meanwhile."""

    path: Path
    source: IO[bytes]
    header: dict[str, Any]
    counts: dict[str, int]
    sha256: str

    @property
    def tables(self) -> list[str]:
        return list(self.counts)

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(table, row)`` for every row line, in file order.

        Raises:
            BackupIntegrityError: the file changed since it was verified (at its end, so a caller inside a
                transaction rolls back).
        """
        changed = BackupIntegrityError(self.path, "the file changed while it was being restored; nothing was "
                                       "restored, run the restore again")
        self.source.seek(0)
        lines = _bounded_lines(self.source, self.path)
        digest = hashlib.sha256(next(lines, b""))
        pending: bytes | None = None
        for raw in lines:
            if pending is not None:
                digest.update(pending)
                try:
                    row = _row(pending)
                except (ValueError, KeyError, TypeError):
                    raise changed from None
                yield row
            pending = raw
        if digest.hexdigest() != self.sha256:
            raise changed


def _row(raw: bytes) -> tuple[str, dict[str, Any]]:
    item = json.loads(raw)
    return item["table"], item["row"]


@contextmanager
def open_backup(path: Path) -> Iterator[VerifiedBackup]:
    """Open ``path`` and check it whole (one streaming pass, flat memory) before anything reads a row.

    Raises:
        BackupIntegrityError: not a backup; from an older datalayer (no trailer); no tables; cut short (no
            trailer); rows missing, added or edited (counts or sha256 differ from the trailer's).
        OSError: the file cannot be read.
    """
    with path.open("rb") as source:
        yield _verify(source, path)


OLDER = ("was written by an older datalayer (backup format {version}), whose files cannot be checked for "
         "completeness; take a new backup with this version (`datalayer backup FILE`), or restore this file "
         "with the datalayer release that wrote it")
CUT_SHORT = ("has no trailer after line {line}: the backup is incomplete (cut short, or its writer was "
             "stopped); take the backup again")


def _verify(source: IO[bytes], path: Path) -> VerifiedBackup:
    lines = _bounded_lines(source, path)
    first = next(lines, b"")
    header = _header(first, path)
    version = header.get("format_version")
    if not isinstance(version, int) or version < FORMAT_VERSION:
        raise BackupIntegrityError(path, OLDER.format(version=version))
    if version > FORMAT_VERSION:
        raise BackupIntegrityError(path, f"was written by a newer datalayer (backup format {version}; this one "
                                   f"reads {FORMAT_VERSION}); upgrade datalayer to restore it")
    listed = header.get("tables")
    if not isinstance(listed, dict) or not listed:
        raise BackupIntegrityError(path, "its header lists no tables: there is nothing to restore", line=1)
    digest = hashlib.sha256(first)
    counts = dict.fromkeys(listed, 0)
    table_digests = {table: hashlib.sha256() for table in listed}
    pending, number = None, 1
    for raw in lines:
        if pending is not None:
            _check_row(pending, number, path, counts, table_digests)
            digest.update(pending)
        pending, number = raw, number + 1
    if pending is None:
        raise BackupIntegrityError(path, CUT_SHORT.format(line=1))
    try:
        trailer = _trailer_of(json.loads(pending))
    except (json.JSONDecodeError, UnicodeDecodeError):
        trailer = None
    if trailer is None:
        raise BackupIntegrityError(path, CUT_SHORT.format(line=number))
    _check_trailer(trailer, path, number, counts, {t: d.hexdigest() for t, d in table_digests.items()},
                   digest.hexdigest())
    return VerifiedBackup(path, source, header, counts, digest.hexdigest())


def _check_row(raw: bytes, number: int, path: Path, counts: dict[str, int], digests: dict[str, Any]) -> None:
    try:
        table, row = _row(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise BackupIntegrityError(path, "not a backup row (the file is damaged)", line=number) from None
    if not isinstance(table, str) or not isinstance(row, dict):
        raise BackupIntegrityError(path, "not a backup row (the file is damaged)", line=number)
    if table not in counts:
        raise BackupIntegrityError(path, f"a row of table {table}, which the header does not list", line=number,
                                   table=table)
    counts[table] += 1
    digests[table].update(raw)


def _check_trailer(trailer: dict[str, Any], path: Path, line: int, counts: dict[str, int],
                   table_digests: dict[str, str], digest: str) -> None:
    expected, expected_digests = trailer.get("tables"), trailer.get("table_sha256")
    if not isinstance(expected, dict) or not isinstance(expected_digests, dict):
        raise BackupIntegrityError(path, "its trailer is damaged (no row counts)", line=line)
    if set(expected) != set(counts):
        raise BackupIntegrityError(path, "its trailer and header list different tables (the file was altered)",
                                   line=line)
    for table, found in counts.items():
        if found != expected[table]:
            raise BackupIntegrityError(path, f"table {table} has {found} rows, its trailer says {expected[table]}: "
                                       "rows were removed or added; take the backup again", table=table)
    for table, found_digest in table_digests.items():
        if found_digest != expected_digests.get(table):
            raise BackupIntegrityError(path, f"the rows of table {table} differ from what was written (sha256 "
                                       "mismatch: a line was edited); take the backup again", table=table)
    if digest != trailer.get("sha256"):
        raise BackupIntegrityError(path, "the file differs from what was written (sha256 mismatch: the header "
                                   "was edited); take the backup again", line=1)
