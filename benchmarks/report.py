"""The results as a terminal table (rich) and as the Markdown of benchmarks/RESULTS.md."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from benchmarks.event_loop import LoopResult
from benchmarks.operations import Result
from benchmarks.scale import BulkScale, DepthResult


@dataclass
class Target:
    name: str
    measured: float
    goal: float
    at_least: bool  # True: measured >= goal; False: measured < goal

    @property
    def met(self) -> bool:
        return self.measured >= self.goal if self.at_least else self.measured < self.goal

    def describe(self, judged: bool = True) -> tuple[str, str, str, str]:
        sign = ">=" if self.at_least else "<"
        verdict = ("yes" if self.met else "MISSED") if judged else "not judged (quick)"
        return self.name, f"{self.measured:.2f}", f"{sign} {self.goal:g}", verdict


@dataclass
class Report:
    mode: str
    machine: dict[str, str]
    operations: list[Result]
    first_page_ms: float
    depths: list[DepthResult]
    bulk_scale: list[BulkScale]
    loop: list[LoopResult]

    def result(self, prefix: str) -> Result:
        return next(r for r in self.operations if r.operation.startswith(prefix))

    def targets(self) -> list[Target]:
        get, page, update = self.result("get by id"), self.result("page of 20"), self.result("update")
        bulk, cached = self.result("bulk insert"), self.result("cached get,")
        mixed_cached = self.result("mixed load, cache on")
        bare, keyset = self.result("page of 20, no total"), self.result("keyset page")
        create_one, update_one = self.result("create, one round trip"), self.result("update one field, one statement")
        flip_one, update_many = self.result("soft delete + restore, one statement"), self.result("update_many")
        deepest = self.depths[-1]
        return [
            Target("get / Tortoise", get.datalayer / get.tortoise, 0.85, True),
            Target("get / asyncpg", get.datalayer / get.asyncpg, 0.6, True),
            Target("page of 20 + total / Tortoise", page.datalayer / page.tortoise, 0.8, True),
            Target("update / Tortoise", update.datalayer / update.tortoise, 0.8, True),
            Target("bulk insert with audit / Tortoise bulk_create", bulk.datalayer / bulk.tortoise, 2.0, True),
            Target("cached get, 16 readers / asyncpg uncached get", cached.datalayer / cached.asyncpg, 1.5, True),
            Target("mixed load, cache on / asyncpg uncached", mixed_cached.datalayer / mixed_cached.asyncpg, 1.0, True),
            Target(f"keyset page at {deepest.depth:,} / page 1", deepest.keyset_ms / self.first_page_ms, 2.0, False),
            Target("worst heartbeat lag during authenticate (ms)", self.loop[0].worst_ms, 20.0, False),
            # the scale-and-speed issue's own (its ratios are to raw asyncpg unless named)
            Target("page of 20, no total / asyncpg", bare.datalayer / bare.asyncpg, 0.6, True),
            Target("keyset page of 20 / asyncpg", keyset.datalayer / keyset.asyncpg, 0.6, True),
            Target("create, one round trip / asyncpg", create_one.datalayer / create_one.asyncpg, 0.85, True),
            Target("update one field, one statement / asyncpg", update_one.datalayer / update_one.asyncpg, 0.85, True),
            Target("soft delete + restore, one statement each / Tortoise", flip_one.datalayer / flip_one.tortoise,
                   0.8, True),
            Target("update_many / the row-by-row path", update_many.datalayer / (update_many.row_by_row or 1), 20.0,
                   True),
        ]


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ratio(ours: float, theirs: float | None) -> str:
    return "—" if theirs is None else f"{ours / theirs:.2f}x"


def operation_rows(report: Report) -> list[list[str]]:
    rows = []
    for r in report.operations:
        cells = [r.operation, r.unit, _rate(r.datalayer), _rate(r.tortoise), _rate(r.asyncpg), _rate(r.sqlalchemy),
                 _ratio(r.datalayer, r.tortoise), _ratio(r.datalayer, r.asyncpg), _ratio(r.datalayer, r.sqlalchemy)]
        note = r.note
        if r.p50_ms and r.p99_ms:
            note += "; p50/p99 ms: " + ", ".join(
                f"{name} {r.p50_ms[name]:.1f}/{r.p99_ms[name]:.1f}" for name in r.p50_ms)
        rows.append(cells + [note])
    return rows


OPERATION_HEADER = ["operation", "unit", "datalayer", "Tortoise", "asyncpg", "SQLAlchemy", "vs Tortoise", "vs asyncpg",
                    "vs SQLAlchemy", "notes"]


def depth_rows(report: Report) -> list[list[str]]:
    rows = [["page 1", f"{report.first_page_ms:.2f}", f"{report.first_page_ms:.2f}", "1.00x", "1.00x"]]
    for d in report.depths:
        rows.append([f"{d.depth:,}", f"{d.offset_ms:.2f}", f"{d.keyset_ms:.2f}",
                     f"{d.offset_ms / report.first_page_ms:.2f}x", f"{d.keyset_ms / report.first_page_ms:.2f}x"])
    return rows


DEPTH_HEADER = ["depth (rows skipped)", "offset ms/page", "keyset ms/page", "offset vs page 1", "keyset vs page 1"]


def bulk_rows(report: Report) -> list[list[str]]:
    rows = []
    for size in sorted({b.rows for b in report.bulk_scale}):
        found = {b.library: b for b in report.bulk_scale if b.rows == size}
        cells = [f"{size:,}"]
        for library in ("datalayer", "tortoise", "asyncpg"):
            b = found[library]
            cells.append(f"{b.seconds:.2f} s, {size / b.seconds:,.0f} rows/s, {b.peak_mb:,.0f} MB")
        cells.append(f"{found['tortoise'].seconds / found['datalayer'].seconds:.2f}x")
        rows.append(cells)
    return rows


BULK_HEADER = ["rows", "datalayer (+audit)", "Tortoise bulk_create", "asyncpg COPY", "datalayer vs Tortoise"]
LOOP_HEADER = ["while", "worst lag ms", "worst after the first beat ms", "p99 lag ms", "heartbeats"]
TARGET_HEADER = ["target", "measured", "goal", "met"]


def loop_rows(report: Report) -> list[list[str]]:
    return [[r.workload, f"{r.worst_ms:.1f}", f"{r.worst_after_start_ms:.1f}", f"{r.p99_ms:.1f}", str(r.beats)]
            for r in report.loop]


def sections(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    return [
        ("Operations (median of interleaved rounds, PostgreSQL)", OPERATION_HEADER, operation_rows(report)),
        ("Pagination at depth (datalayer; ms per page of 20)", DEPTH_HEADER, depth_rows(report)),
        ("Bulk insert at scale (time, rate, peak memory added)", BULK_HEADER, bulk_rows(report)),
        ("Event loop: a 2 ms heartbeat's lateness", LOOP_HEADER, loop_rows(report)),
        ("Targets", TARGET_HEADER, [list(t.describe(report.mode != "quick")) for t in report.targets()]),
    ]


def print_report(report: Report, console: Console | None = None) -> None:
    console = console or Console()
    console.print(f"[bold]datalayer benchmarks[/bold] ({report.mode}) on " +
                  ", ".join(f"{k}: {v}" for k, v in report.machine.items()))
    for title, header, rows in sections(report):
        notes = []
        if header[-1] == "notes":  # too wide for a terminal column: numbered below the table
            notes = [row[-1] for row in rows]
            header, rows = header[:-1], [row[:-1] + [str(i + 1)] for i, row in enumerate(rows)]
            header = [*header, "note"]
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        for number, note in enumerate(notes, 1):
            if note:
                console.print(f"  {number}. {note}")


def markdown(report: Report, command: str) -> str:
    lines = [
        "# Benchmark results", "",
        (f"Produced by `{command}` ({report.mode}). Figures move by about ±15% between runs on this VM; "
         "ratios from one run are what to compare, since the libraries ran interleaved."), "",
        "## Machine", "",
    ]
    lines += [f"- **{key}:** {value}" for key, value in report.machine.items()]
    for title, header, rows in sections(report):
        lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
