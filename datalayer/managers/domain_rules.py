"""Domain invariants that hold through every generic write path (create, update, update_many, upsert,
bulk_create, restore), declared by a pack's manager: per-field checks, rules across fields, and fields only
its domain methods may change (a task's status machine, a session's state, an API key's revocation)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from tortoise.models import Model

from datalayer.errors import ValidationError

#: models whose ``guarded_fields`` the current task may write (inside a manager's ``domain_write()``)
_DOMAIN_WRITES: ContextVar[frozenset[type]] = ContextVar("datalayer_domain_writes", default=frozenset())


class DomainRules:
    """Mixed into ``ModelManager``: declare rules on a subclass; every write path asks before writing."""

    model: type[Model]
    _label: str
    #: fields only the subclass's domain methods change, each with the method to use instead:
    #: ``update``/``update_many`` (and an ``upsert`` of an existing row) refuse them with a ValidationError
    guarded_fields: ClassVar[Mapping[str, str]] = {}
    #: value checks by field for every write path: each returns the value or raises ``ValueError`` saying
    #: what is wrong and the fix (``datalayer.core.rules`` has common ones: URLs, counters, JSON shapes)
    field_checks: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def _init_domain_rules(self) -> None:
        self._has_rules = bool(self.field_checks) or type(self).domain_errors is not DomainRules.domain_errors
        self._column_defaults = {name: field.default for name, field in self.model._meta.fields_map.items()
                                 if name in self.model._meta.fields_db_projection and not callable(field.default)}

    def domain_errors(self, row: Mapping[str, Any], *, partial: bool) -> dict[str, str]:
        """The domain rules ``row`` breaks, as ``{field: what is wrong and how to fix it}``.

        Every write path asks before writing: ``create``, ``bulk_create`` and ``restore`` pass the whole
        prospective row (column defaults filled in), ``update`` and ``update_many`` only the validated values
        being set (``partial``). Here: ``field_checks`` on the values that are not None; override (calling
        ``super()``) for rules across fields. Rules that depend on the row's current state (a status
        machine) belong to domain methods instead, with the field in ``guarded_fields``.
        """
        errors = {}
        for name, check in self.field_checks.items():
            if row.get(name) is not None:
                try:
                    check(row[name])
                except ValueError as exc:
                    errors[name] = str(exc)
        return errors

    @contextmanager
    def domain_write(self) -> Iterator[None]:
        """For domain methods: inside, generic writes of this model may set ``guarded_fields``."""
        token = _DOMAIN_WRITES.set(_DOMAIN_WRITES.get() | {self.model})
        try:
            yield
        finally:
            _DOMAIN_WRITES.reset(token)

    def check_domain(self, values: Mapping[str, Any], *, partial: bool) -> None:
        """``ValidationError`` naming each guarded field ``values`` set (partial writes outside
        ``domain_write``) and each broken domain rule; nothing is written then."""
        errors: dict[str, str] = {}
        if self._has_rules:
            row = values if partial else {**self._column_defaults, **values}
            errors = self.domain_errors(row, partial=partial)
        if partial and self.guarded_fields and self.model not in _DOMAIN_WRITES.get():
            errors.update({name: f"is changed only by {self.guarded_fields[name]}; generic writes may not set it"
                           for name in values if name in self.guarded_fields})
        if errors:
            raise ValidationError(errors, model=self._label)

    def _check_rows(self, rows: Sequence[Mapping[str, Any]], first_index: int) -> None:
        """``bulk_create``'s check of complete rows; errors keyed ``rows[i].field``."""
        errors = {f"rows[{first_index + index}].{name}": text
                  for index, row in enumerate(rows)
                  for name, text in self.domain_errors(row, partial=False).items()}
        if errors:
            raise ValidationError(errors, model=self._label)
