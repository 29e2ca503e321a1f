"""Output schemas: what a model looks like to a client. Secret fields are never in one unless asked for.

    UserOut = schema_out(User)                                   # pydantic model without password_hash
    NotebookOut = schema_out(Notebook, relations=("owner", "notes__editor"))
    body = await to_schema(notebook, relations=("owner", "notes__editor"))  # fetches them, then validates

A schema holds the model's columns (a foreign key as its ``<name>_id``) minus ``secret_fields``; relations are
added only on request, by name or ``__`` path (as in ``prefetch_related``), each with its own model's output
schema, so a related row's secrets stay out too. Every ``DataModel`` is also a pydantic type through its
schema (``__get_pydantic_core_schema__``, ``__pydantic_serializer__``), and ``dict(row)`` (FastAPI's fallback
for objects it does not know) lists the same fields.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Any, TypeVar, overload

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, GetCoreSchemaHandler, create_model
from pydantic_core import CoreSchema, SchemaSerializer, core_schema
from tortoise import Tortoise
from tortoise.exceptions import NoValuesFetched
from tortoise.fields import JSONField
from tortoise.fields.relational import (
    BackwardFKRelation,
    BackwardOneToOneRelation,
    ForeignKeyFieldInstance,
    ManyToManyFieldInstance,
    RelationalField,
)
from tortoise.models import Model

from datalayer.errors import ConfigurationError, ValidationError
from datalayer.translate import translated

_NOT_FETCHED = "is not fetched: name it in to_schema(..., relations=...) (or fetch_related it) first"


def schema_out(
    model: type[Model],
    *,
    relations: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_secrets: bool = False,
) -> type[BaseModel]:
    """The pydantic model a response shows for ``model``; built once per set of options.

    Args:
        model: a Tortoise model (a ``DataModel`` declares ``secret_fields``).
        relations: relations to nest, by name or path (``"notes"``, ``"notebook__owner"``); each holds the
            related model's output schema (a list for to-many relations, ``None`` for a missing row).
        exclude: more of the model's own fields to leave out (a foreign key by ``<name>_id``).
        include_secrets: keep ``secret_fields`` (here and in the relations); for trusted internal use only.

    Raises:
        ValidationError: under ``relations`` or ``exclude``, naming what the model does not have.
        ConfigurationError: a relation that cannot be resolved before Tortoise is initialised.
    """
    return _build(model, tuple(sorted(set(relations))), frozenset(exclude), include_secrets)


PageT = TypeVar("PageT", bound=BaseModel)


@overload
async def to_schema(rows: Model, *, relations: Sequence[str] = ..., exclude: Sequence[str] = ...,
                    include_secrets: bool = ...) -> BaseModel: ...
@overload
async def to_schema(rows: Sequence[Model], *, relations: Sequence[str] = ..., exclude: Sequence[str] = ...,
                    include_secrets: bool = ...) -> list[BaseModel]: ...
@overload
async def to_schema(rows: PageT, *, relations: Sequence[str] = ..., exclude: Sequence[str] = ...,
                    include_secrets: bool = ...) -> PageT: ...
async def to_schema(
    rows: Model | Sequence[Model] | BaseModel,
    *,
    relations: Sequence[str] = (),
    exclude: Sequence[str] = (),
    include_secrets: bool = False,
) -> BaseModel | list[BaseModel]:
    """Rows as their output schema (``schema_out`` with the same options), relations fetched first.

    One row gives one schema instance, a list gives a list, a ``Page`` or ``Chunk`` the same page holding
    schema instances (a response model for it: ``Page[schema_out(Model, relations=...)]``). Relations are
    fetched in one query per relation for all rows, through each related model's default manager, so
    soft-deleted related rows stay hidden.
    """
    if isinstance(rows, BaseModel):  # a Page or Chunk (managers sit above this layer: known by its items)
        return rows.model_copy(update={"items": await to_schema(
            rows.items, relations=relations, exclude=exclude, include_secrets=include_secrets)})  # type: ignore[attr-defined]
    many = not isinstance(rows, Model)
    batch: list[Model] = list(rows) if many else [rows]  # type: ignore[arg-type, list-item]
    if not batch:
        return []
    model = type(batch[0])
    schema = schema_out(model, relations=relations, exclude=exclude, include_secrets=include_secrets)
    if relations:
        with translated(model.__name__):
            await model.fetch_for_list(batch, *sorted(set(relations)))
    out = [schema.model_validate(row) for row in batch]
    return out if many else out[0]


def core_schema_of(model: type[Model], handler: GetCoreSchemaHandler) -> CoreSchema:
    """How pydantic (and FastAPI) see a model type: an instance, serialised by its output schema.

    Validation keeps the row itself (a dict or another schema instance is read as the output schema), so
    ``Page[User](items=rows)`` holds the rows; serialisation and the JSON schema are the output schema's.
    """
    out = schema_out(model)
    out_schema = handler.generate_schema(out)

    def validate(value: Any) -> Any:
        return value if isinstance(value, model | out) else out.model_validate(value)

    return core_schema.no_info_plain_validator_function(
        validate,
        json_schema_input_schema=out_schema,
        serialization=core_schema.plain_serializer_function_ser_schema(_as(out), return_schema=out_schema),
    )


class SafeSerializer:
    """``__pydantic_serializer__`` of every ``DataModel``: what pydantic uses for a row it meets untyped
    (in a ``list[Any]``, a bare ``Page``): the row's output schema, never its secret fields."""

    def __get__(self, instance: object, owner: type[Model]) -> SchemaSerializer:
        return _serializer(owner)


def output_fields(model: type[Model]) -> Iterator[str]:
    """The field names ``schema_out(model)`` shows, in order (what ``dict(row)`` lists)."""
    return iter(schema_out(model).model_fields)


def _as(out: type[BaseModel]) -> Any:
    def dump(value: Any) -> BaseModel:
        return value if isinstance(value, out) else out.model_validate(value)

    return dump


@functools.cache
def _serializer(model: type[Model]) -> SchemaSerializer:
    out = schema_out(model)
    return SchemaSerializer(core_schema.any_schema(
        serialization=core_schema.plain_serializer_function_ser_schema(_as(out), return_schema=out.__pydantic_core_schema__)
    ))


@functools.cache
def _build(model: type[Model], relations: tuple[str, ...], exclude: frozenset[str],
           include_secrets: bool) -> type[BaseModel]:
    nested = _relation_tree(relations)
    hidden = set(exclude) | (set() if include_secrets else set(getattr(model, "secret_fields", ())))
    known: set[str] = set()
    fields: dict[str, Any] = {}
    for name, field in model._meta.fields_map.items():
        if getattr(field, "reference", None) is not None:
            continue  # a foreign key's key column: added where its relation is declared
        if isinstance(field, RelationalField):
            if isinstance(field, ForeignKeyFieldInstance):  # and one-to-one
                key = f"{name}_id"
                known.add(key)
                if key not in hidden:
                    fields[key] = (_nullable(_key_type(model, name, field), field.null), _described(field))
            continue
        known.add(name)
        if name not in hidden:
            fields[name] = (_nullable(_value_type(field), field.null), _described(field))
    if unknown := sorted(set(exclude) - known):
        raise ValidationError({"exclude": f"{model.__name__} has no field {', '.join(unknown)}; "
                                          f"choose from {', '.join(sorted(known))}"}, model=model.__name__)
    for name, paths in nested.items():
        many, related = _relation(model, name)
        schema = schema_out(related, relations=paths, include_secrets=include_secrets)
        if many:
            fields[name] = (Annotated[list[schema], BeforeValidator(_fetched_many(name))], Field())  # type: ignore[valid-type]
        else:
            fields[name] = (Annotated[schema | None, BeforeValidator(_fetched_one(name))], Field())
    return create_model(
        _schema_name(model, relations, exclude, include_secrets),
        __config__=ConfigDict(from_attributes=True),
        __doc__=f"{model.__name__} as responses show it" + ("" if include_secrets else " (secret fields left out)"),
        __module__=model.__module__,
        **fields,
    )


def _relation_tree(paths: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """``("notes__editor", "owner")`` -> ``{"notes": ("editor",), "owner": ()}``."""
    tree: dict[str, set[str]] = {}
    for path in paths:
        head, _, rest = path.partition("__")
        tree.setdefault(head, set())
        if rest:
            tree[head].add(rest)
    return {head: tuple(sorted(rest)) for head, rest in sorted(tree.items())}


def _schema_name(model: type[Model], relations: Sequence[str], exclude: frozenset[str], secrets: bool) -> str:
    def camel(text: str) -> str:
        return "".join(part[:1].upper() + part[1:] for part in text.replace("__", "_").split("_"))

    name = model.__name__
    if relations:
        name += "With" + "And".join(camel(path) for path in relations)
    if exclude:
        name += "Without" + "And".join(camel(field) for field in sorted(exclude))
    return name + ("WithSecrets" if secrets else "") + "Out"


def _described(field: Any) -> Any:
    return Field(description=field.description) if field.description else Field()


def _nullable(kind: Any, null: bool) -> Any:
    return kind | None if null else kind


def _value_type(field: Any) -> Any:
    enum = getattr(field, "enum_type", None)
    if enum is not None:
        return enum
    kind = getattr(field, "field_type", None)
    if isinstance(field, JSONField):  # any JSON value, unless the field declares a pydantic model
        return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else Any
    return kind if isinstance(kind, type) else Any


def _key_type(model: type[Model], name: str, field: Any) -> Any:
    """The type of ``<name>_id``: the related model's key; before Tortoise resolves it, a UUID (datalayer's)."""
    column = model._meta.fields_map.get(f"{name}_id")
    if column is not None:
        return _value_type(column)
    related = _resolved(field) or _model_named(field.model_name, strict=False)
    return _value_type(related._meta.pk) if related is not None and related._meta.pk is not None else uuid.UUID


def _relation(model: type[Model], name: str) -> tuple[bool, type[Model]]:
    """Whether the relation ``name`` of ``model`` is to-many, and the model it leads to."""
    field = model._meta.fields_map.get(name)
    if isinstance(field, RelationalField):
        many = isinstance(field, BackwardFKRelation | ManyToManyFieldInstance) and not isinstance(
            field, BackwardOneToOneRelation)
        return many, _resolved(field) or _model_named(field.model_name, strict=True)  # type: ignore[attr-defined, return-value]
    if field is None and not _initialised() and (declared := _declared_backward(model, name)):
        return declared  # backward relations exist once Tortoise is initialised
    relations = sorted(model._meta.fetch_fields)
    raise ValidationError({"relations": f"{model.__name__} has no relation {name!r}; choose from "
                                        f"{', '.join(relations) or 'none'}"}, model=model.__name__)


def _resolved(field: Any) -> type[Model] | None:
    related = getattr(field, "related_model", None)
    return related if isinstance(related, type) else None


def _initialised() -> bool:
    return Tortoise.apps is not None


def _concrete_models() -> Iterator[type[Model]]:
    pending = list(Model.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if not cls._meta.abstract:
            yield cls


def _model_named(reference: str | None, *, strict: bool) -> type[Model] | None:
    """The model an ``"app.Model"`` reference names, found among the imported models by class name (what
    there is before Tortoise is initialised)."""
    name = (reference or "").rsplit(".", 1)[-1]
    found = {cls for cls in _concrete_models() if cls.__name__ == name}
    if len(found) == 1:
        return found.pop()
    if strict:
        raise ConfigurationError(f"cannot tell which model {reference!r} is before the context is open "
                                 f"({len(found)} imported models are called {name!r}): build this schema after "
                                 "get_context()")
    return None


def _declared_backward(model: type[Model], name: str) -> tuple[bool, type[Model]] | None:
    """Before Tortoise is initialised: the relation another model declares to ``model`` with
    ``related_name=name`` (to-many unless it is one-to-one), which Tortoise will add to ``model``."""
    for other in _concrete_models():
        for field in other._meta.fields_map.values():
            if (isinstance(field, ForeignKeyFieldInstance | ManyToManyFieldInstance)
                    and getattr(field, "related_name", None) == name
                    and (field.model_name or "").rsplit(".", 1)[-1] == model.__name__):  # type: ignore[union-attr]
                return not (isinstance(field, ForeignKeyFieldInstance) and field.unique), other
    return None


def _fetched_one(name: str) -> Any:
    def check(value: Any) -> Any:
        if value is None or isinstance(value, Model | BaseModel | dict):
            return value
        raise ValueError(f"relation {name!r} {_NOT_FETCHED}")

    return check


def _fetched_many(name: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return value
        try:
            return list(value)
        except NoValuesFetched:
            raise ValueError(f"relation {name!r} {_NOT_FETCHED}") from None

    return check
