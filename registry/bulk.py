"""A lean bulk insert for the tracker's big writes (a first discovery cycle inserts thousands of
models, history rows and events at once).

Django's bulk_create prepares every value of every field through the field's get_db_prep_save
(~5 µs a call here), and building the model instances to hand it costs as much again: for 30-field
rows that was most of a discovery cycle's time. `insert_rows` takes plain rows (dicts by attribute
name; a missing field gets its default), prepares only what needs it — JSON, dates, decimals —
once per object (the rows of a cycle share their times and defaults), passes the rest as is, and
sends them in as few statements as the database allows: one `INSERT … RETURNING id` per batch of
up to 2,000 rows, or on PostgreSQL, for more than a few rows, one COPY (see `_copy`). No signals
are sent (bulk_create sends none either).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.utils import timezone

PASS_THROUGH = (
    models.BooleanField, models.IntegerField, models.CharField, models.TextField, models.FloatField,
    models.ForeignKey,
)
MAX_ROWS = 2000  # per statement: past this a bigger batch saves nothing measurable
# For writers that share a process with the gateway's event loop (usage, health evidence): a
# statement's parameters are bound, and on SQLite its text rewritten (%s to ?), in C calls that hold
# the GIL throughout, which no switch interval interrupts. Without this bound the usage insert took
# 434 rows (10,000 parameters) on PostgreSQL, and health evidence through `insert_rows` up to 2,000
# rows (12,000) on SQLite, whose library takes 32,766; rewriting the text of a 10,000-parameter
# statement took 1.1 ms in one call here, and 0.16 ms at 1,500.
STATEMENT_PARAMS_BESIDE_A_LOOP = 1500
# PostgreSQL: from this many rows COPY (two round trips) costs less than an INSERT (one).
COPY_FROM_ROWS = 20


class JSONText(str):
    """A JSON value serialised already (the event publisher dumps each event once to redact it):
    stored as it is instead of being dumped a second time."""


def _preparer(field: models.Field, connection) -> Callable[[Any], Any] | None:
    """How a value of this field (never None) is made ready for the database; None: as it is."""
    ops = connection.ops
    if isinstance(field, models.DateTimeField):
        return ops.adapt_datetimefield_value
    if isinstance(field, models.DecimalField):
        return lambda v: ops.adapt_decimalfield_value(v, field.max_digits, field.decimal_places)
    if isinstance(field, models.JSONField):
        return _json_preparer(field, connection)
    if isinstance(field, PASS_THROUGH):
        return None
    return lambda v: field.get_db_prep_save(v, connection)


def _json_preparer(field: models.JSONField, connection) -> Callable[[Any], Any]:
    adapt, encoder = connection.ops.adapt_json_value, field.encoder
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        def raw(text: str) -> Any:
            return Jsonb(text, dumps=str)
    else:
        raw = str

    def prep(value: Any) -> Any:
        return raw(value) if isinstance(value, JSONText) else adapt(value, encoder)

    return prep


def rows_per_statement(columns: int, connection, max_params: int | None = None) -> int:
    """How many rows of `columns` values one INSERT carries: as many as the database takes, at most
    MAX_ROWS, and with `max_params` no more parameters than that."""
    limit = connection.features.max_query_params
    if connection.vendor == "sqlite":
        import sqlite3

        # Django assumes SQLite's historical 999 variables; the library linked says what it takes.
        connection.ensure_connection()
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    limit = limit or 65535
    if max_params:
        limit = min(limit, max_params)
    return max(1, min(MAX_ROWS, limit // columns))


def _defaults(fields: Sequence[models.Field]) -> list[Any]:
    """Each field's value in a row that does not give it. Computed once for all the rows: the
    values are only written, never kept, so rows may share a default list or dict."""
    now = timezone.now()
    return [
        now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
        for f in fields
    ]


def insert_rows(model: type[models.Model], rows: Sequence[dict[str, Any]], *, fill: bool = False,
                max_params: int | None = None) -> list[int]:
    """Insert rows of `model` given as dicts by attribute name (`provider_id`, not `provider`) and
    return their primary keys in order. A field a row leaves out gets its default (auto_now and
    auto_now_add fields: now). With `fill`, each dict is completed in place with those defaults
    and its new primary key, so that it holds the whole row as stored. `max_params` caps the
    parameters of one statement (see STATEMENT_PARAMS_BESIDE_A_LOOP)."""
    if not rows:
        return []
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    names = [f.attname for f in fields]
    defaults = _defaults(fields)
    values = [list(map(row.get, names, defaults)) for row in rows]
    if fill:
        for row, full in zip(rows, values, strict=True):
            row.update(zip(names, full, strict=True))  # before _execute prepares `values` in place
    pks = _execute(meta, fields, values, max_params)
    if fill:
        for row, pk in zip(rows, pks, strict=True):
            row[meta.pk.attname] = pk
    return pks


def _execute(meta, fields: Sequence[models.Field], values: list[list[Any]], max_params: int | None = None) -> list[int]:
    """Insert `values` (one new list per row, prepared in place) into the table of `meta`."""
    connection = connections[DEFAULT_DB_ALIAS]  # once: each use of the proxy looks it up again
    prepare = [(i, prep) for i, f in enumerate(fields) if (prep := _preparer(f, connection)) is not None]
    for i, prep in prepare:
        # Column by column, each object prepared once (rows share their times, defaults, True and
        # False); the rows hold every value meanwhile, so no id is reused. None stays NULL (for a
        # JSONField too, as its get_db_prep_save has it).
        ready: dict[int, Any] = {id(None): None}
        for one in values:
            key = id(one[i])
            if key not in ready:
                ready[key] = prep(one[i])
            one[i] = ready[key]
    if connection.vendor == "postgresql" and len(values) >= COPY_FROM_ROWS:
        return _copy(connection, meta, fields, values)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_batch = rows_per_statement(len(fields), connection, max_params)
    pks: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(values), per_batch):
            batch = values[start:start + per_batch]
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * len(batch))} "
                f"RETURNING {quote(meta.pk.column)}",
                list(chain.from_iterable(batch)),
            )
            pks.extend(pk for (pk,) in cursor.fetchall())
    return pks


def _copy(connection, meta, fields: Sequence[models.Field], values: list[list[Any]]) -> list[int]:
    """PostgreSQL: the ids are drawn from the table's sequence first, then the rows go by COPY.
    psycopg reads the text of a multi-row INSERT in Python, placeholder by placeholder (a 2,000-row
    batch has 60,000), and quotes each value; COPY formats the rows in C: a tenth of the CPU.
    Drawn inside the caller's transaction, the ids keep the order an insert would give them (the
    event publisher holds the registry version's row lock meanwhile, so events commit in id order)."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(values)],
        )
        pks = [pk for (pk,) in cursor.fetchall()]
        columns = ", ".join(quote(column) for column in [meta.pk.column, *(f.column for f in fields)])
        with cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
            for pk, one in zip(pks, values, strict=True):
                copy.write_row([pk, *one])
    return pks
