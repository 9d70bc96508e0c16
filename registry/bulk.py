"""A lean bulk insert for the tracker's big writes (a first discovery cycle inserts thousands of
models, history rows and events at once).

Django's bulk_create prepares every value of every field through the field's get_db_prep_save
(~5 µs a call here), and building the model instances to hand it costs as much again: for 30-field
rows that was most of a discovery cycle's time. `insert_rows` takes plain rows (dicts by attribute
name; a missing field gets its default), prepares only what needs it — JSON, dates, decimals — once
per distinct value where every row shares it (a cycle's `now`), passes the rest as is, and sends
one `INSERT … RETURNING id` per batch as large as the database allows (SQLite ≥ 3.35 and
PostgreSQL both return ids). `insert` does the same for model instances. No signals are sent
(bulk_create sends none either).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connection, models
from django.utils import timezone

PASS_THROUGH = (
    models.BooleanField, models.IntegerField, models.CharField, models.TextField, models.FloatField,
    models.ForeignKey,
)
MAX_ROWS = 2000  # per statement: past this a bigger batch saves nothing measurable


class JSONText(str):
    """A JSON value serialised already (the event publisher dumps each event once to redact it):
    stored as it is instead of being dumped a second time."""


def _reuse_last(prepare: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`prepare`, remembering its last answer: rows written together share their times."""
    last: list[Any] = [object(), None]

    def prep(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, prepare(value)
        return last[1]

    return prep


def _preparer(field: models.Field) -> Callable[[Any], Any]:
    if isinstance(field, models.DateTimeField):
        adapt = connection.ops.adapt_datetimefield_value
        return _reuse_last(lambda v: None if v is None else adapt(v))
    if isinstance(field, models.DecimalField):
        adapt = connection.ops.adapt_decimalfield_value
        return lambda v: None if v is None else adapt(v, field.max_digits, field.decimal_places)
    if isinstance(field, models.JSONField):
        return _json_preparer(field)
    if isinstance(field, PASS_THROUGH):
        return lambda v: v
    return lambda v: field.get_db_prep_save(v, connection)


def _json_preparer(field: models.JSONField) -> Callable[[Any], Any]:
    adapt, encoder = connection.ops.adapt_json_value, field.encoder
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        def raw(text: str) -> Any:
            return Jsonb(text, dumps=str)
    else:
        raw = str

    def prep(value: Any) -> Any:
        if value is None:  # SQL NULL, as JSONField.get_db_prep_save has it
            return None
        if isinstance(value, JSONText):
            return raw(value)
        return adapt(value, encoder)

    return prep


def _rows_per_statement(columns: int) -> int:
    limit = connection.features.max_query_params
    if connection.vendor == "sqlite":
        import sqlite3

        # Django assumes SQLite's historical 999 variables; the library linked says what it takes.
        connection.ensure_connection()
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(MAX_ROWS, (limit or 65535) // columns))


def _defaults(fields: Sequence[models.Field]) -> dict[str, Any]:
    """Each field's value in a row that does not give it. Computed once for all the rows: the
    values are only written, never kept, so rows may share a default list or dict."""
    now = timezone.now()
    out = {}
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            out[f.attname] = now
        else:
            out[f.attname] = f.get_default()
    return out


def insert_rows(model: type[models.Model], rows: Sequence[dict[str, Any]], *, fill: bool = False) -> list[int]:
    """Insert rows of `model` given as dicts by attribute name (`provider_id`, not `provider`) and
    return their primary keys in order. A field a row leaves out gets its default (auto_now and
    auto_now_add fields: now). With `fill`, each dict is completed in place with those defaults
    and its new primary key, so that it holds the whole row as stored."""
    if not rows:
        return []
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    defaults = _defaults(fields)
    if fill:
        for row in rows:
            for name, value in defaults.items():
                if name not in row:
                    row[name] = value
        values: Iterable[Sequence[Any]] = ([row[f.attname] for f in fields] for row in rows)
    else:
        values = ([row.get(f.attname, defaults[f.attname]) for f in fields] for row in rows)
    pks = _execute(meta, fields, list(values))
    if fill:
        for row, pk in zip(rows, pks, strict=True):
            row[meta.pk.attname] = pk
    return pks


def insert(model: type[models.Model], objs: Sequence[models.Model]) -> list[models.Model]:
    """Insert `objs` (unsaved instances of `model`) and give them their primary keys."""
    if not objs:
        return list(objs)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    for obj in objs:  # auto_now / auto_now_add, as save() would
        for f in fields:
            if getattr(f, "auto_now", False) or (getattr(f, "auto_now_add", False) and getattr(obj, f.attname) is None):
                f.pre_save(obj, add=True)
    pks = _execute(meta, fields, [[getattr(obj, f.attname) for f in fields] for obj in objs])
    for obj, pk in zip(objs, pks, strict=True):
        obj.pk = pk
        obj._state.adding = False
    return list(objs)


def _execute(meta, fields: Sequence[models.Field], values: list[Sequence[Any]]) -> list[int]:
    prepare = [_preparer(f) for f in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_batch = _rows_per_statement(len(fields))
    pks: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), per_batch):
            batch = values[start:start + per_batch]
            params = [prep(value) for one in batch for prep, value in zip(prepare, one, strict=True)]
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * len(batch))} "
                f"RETURNING {quote(meta.pk.column)}",
                params,
            )
            pks.extend(pk for (pk,) in cursor.fetchall())
    return pks
