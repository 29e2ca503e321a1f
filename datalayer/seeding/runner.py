"""Running a seed set: idempotent (natural keys), transactional (all or nothing), and reversible.

Rows the seed creates are written through the managers while acting as ``SEED_ACTOR``, so their
``created_by`` marks them as seeded; ``clear`` removes only such rows (and append-only records matching a
seed key), and keeps any seeded row that data created by someone else still refers to.
"""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError as PydanticValidationError
from tortoise.models import Model

from datalayer.actor import acting_as
from datalayer.context import DataContext
from datalayer.errors import ValidationError
from datalayer.managers.filters import _adapter
from datalayer.managers.values import value_type
from datalayer.seeding.loader import SeedBlock, SeedSet
from datalayer.seeding.values import (
    SeedError,
    check_fields,
    column_name,
    differences,
    every_row,
    live_rows,
    resolve,
)
from datalayer.transactions import transaction

#: the actor stamped on every row a seed creates (``created_by``): how ``clear`` recognises seeded rows
SEED_ACTOR = uuid.uuid5(uuid.NAMESPACE_URL, "https://datalayer/seed")

Action = Literal["created", "updated", "unchanged", "differs", "removed", "kept"]


@dataclass(frozen=True)
class SeedOutcome:
    model: str
    key: str
    action: Action
    note: str = ""


@dataclass
class SeedReport:
    seed_set: str
    outcomes: list[SeedOutcome] = field(default_factory=list)
    #: passwords generated for users whose seed gives none: shown once, stored only as bcrypt hashes
    generated_passwords: dict[str, str] = field(default_factory=dict)

    def add(self, model: type[Model], key: dict[str, Any], action: Action, note: str = "") -> None:
        text = ", ".join(f"{k}={v}" for k, v in key.items())
        self.outcomes.append(SeedOutcome(model.__name__, text, action, note))

    def counts(self) -> dict[str, int]:
        return dict(Counter(outcome.action for outcome in self.outcomes))


def _model(context: DataContext, name: str) -> type[Model]:
    models = {model.__name__: model for model in context.models}
    if name not in models:
        raise SeedError(f"seed names model {name!r}, which is not loaded; known: {', '.join(sorted(models))}")
    return models[name]


def _has_password(model: type[Model]) -> bool:
    return "password_hash" in model._meta.fields_map


async def _seed_row(context: DataContext, model: type[Model], block: SeedBlock, row: dict[str, Any],
                    force: bool, report: SeedReport) -> None:
    manager: Any = context.manager(model)
    check_fields(model, row, block.source, also=("password",) if _has_password(model) else ())
    password = row.get("password") if _has_password(model) else None
    values = await resolve(model, {k: v for k, v in row.items() if not (k == "password" and _has_password(model))})
    key = {column_name(model, k): values[column_name(model, k)] for k in block.key}
    _check_key(model, key)
    shown = {k: row[k] for k in block.key}
    existing = await live_rows(model).filter(**key).first()
    if existing is None:
        if _has_password(model):
            if password is None:
                password = secrets.token_urlsafe(12)
                report.generated_passwords[str(row.get("email", shown))] = password
            values["password"] = password
        await manager.create(values)
        report.add(model, shown, "created")
        return
    changed = differences(existing, values)
    if password is not None and not await manager.verify_password(password, existing.password_hash):
        changed["password_hash"] = None  # computed below, only when it will be written
    if not changed:
        report.add(model, shown, "unchanged")
    elif not force:
        report.add(model, shown, "differs", f"{', '.join(sorted(changed))} differ; --force overwrites")
    else:
        if "password_hash" in changed:
            changed["password_hash"] = await manager.hash_password(password)
        await manager.update(existing.pk, changed)
        report.add(model, shown, "updated", ", ".join(sorted(changed)))


def _check_key(model: type[Model], key: dict[str, Any]) -> None:
    """The natural key's values pass the rules of a value to write (type, length, storable text) before the
    lookup by them: the driver would otherwise meet a NUL or an over-long text first."""
    fields = model._meta.fields_map
    for name, value in key.items():
        if name not in fields or name in model._meta.fetch_fields:
            continue
        try:
            _adapter(value_type(fields[name], "input")).validate_python(value)
        except PydanticValidationError as exc:
            raise ValidationError({name: exc.errors(include_url=False)[0]["msg"]}, model=model.__name__) from None


async def seed(context: DataContext, seed_set: SeedSet, *, force: bool = False) -> SeedReport:
    """Create what is missing; leave (or with ``force``, overwrite) rows that differ. All or nothing.

    Raises:
        ValidationError: a row's value is refused; each field is named with the seed file and the row's
            place in it (``development.json: User.rows[2].email``). Nothing is written.
        SeedError: the set is inconsistent (an unknown model or field, a relation to a row it lacks).
    """
    report = SeedReport(seed_set.name)
    async with transaction():
        with acting_as(SEED_ACTOR):
            for block in seed_set.blocks:
                model = _model(context, block.model)
                for index, row in enumerate(block.rows):
                    try:
                        await _seed_row(context, model, block, row, force, report)
                    except ValidationError as exc:
                        where = f"{block.source}: {block.model}.rows[{index}]"
                        raise ValidationError({f"{where}.{field}": message for field, message in exc.errors.items()},
                                              model=None) from None
    return report


async def _referenced_elsewhere(context: DataContext, model: type[Model], pk: Any,
                                removing: dict[type[Model], set[Any]]) -> bool:
    """Whether a row outside ``removing`` refers to ``model`` row ``pk``."""
    for other in context.models:
        for name in other._meta.fk_fields:
            if other._meta.fields_map[name].related_model is not model:  # type: ignore[attr-defined]  # an FK
                continue
            query = every_row(other).filter(**{f"{name}_id": pk})
            if removing.get(other):
                query = query.exclude(pk__in=list(removing[other]))
            if await query.exists():
                return True
    return False


async def clear(context: DataContext, seed_set: SeedSet) -> SeedReport:
    """Remove the rows this seed set created, and nothing anyone else created or still relies on."""
    report = SeedReport(seed_set.name)
    candidates: list[tuple[type[Model], Any, dict[str, Any]]] = []
    async with transaction():
        with acting_as(SEED_ACTOR):
            for block in seed_set.blocks:
                model = _model(context, block.model)
                for row in block.rows:
                    shown = {k: row[k] for k in block.key}
                    check_fields(model, shown, block.source)
                    try:
                        values = await resolve(model, shown, include_deleted=True)
                    except SeedError:
                        continue  # what it refers to is gone, so is the row
                    found = await every_row(model).filter(**values).first()
                    if found is None:
                        continue
                    if "created_by" in model._meta.fields_map and found.created_by != SEED_ACTOR:
                        report.add(model, shown, "kept", "not created by the seed")
                        continue
                    candidates.append((model, found.pk, shown))
            removing: dict[type[Model], set[Any]] = {}
            for model, pk, _ in candidates:
                removing.setdefault(model, set()).add(pk)
            settled = False
            while not settled:  # keeping a row can oblige keeping what it refers to
                settled = True
                for model, pk, shown in list(candidates):
                    if await _referenced_elsewhere(context, model, pk, removing):
                        candidates.remove((model, pk, shown))
                        removing[model].discard(pk)
                        report.add(model, shown, "kept", "still referenced by data the seed did not create")
                        settled = False
            for model, pk, shown in reversed(candidates):
                await context.manager(model).delete(pk, hard=True)
                report.add(model, shown, "removed")
    return report
