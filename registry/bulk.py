"""A lean bulk insert for the tracker's big writes (a first discovery cycle inserts thousands of
models, history rows and events at once).

Django's bulk_create prepares every value of every field through the field's get_db_prep_save
(~5 µs a call here): for 30-field rows that was most of a discovery cycle's time. This prepares
only what needs it — JSON, dates, decimals — passes the rest as is, and sends one
`INSERT … RETURNING id` per batch (SQLite ≥ 3.35 and PostgreSQL both return ids), setting each
object's primary key like bulk_create does. No signals are sent (bulk_create sends none either).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connection, models

PASS_THROUGH = (
    models.BooleanField, models.IntegerField, models.CharField, models.TextField, models.FloatField,
    models.ForeignKey,
)


def _preparer(field: models.Field) -> Callable[[Any], Any]:
    if isinstance(field, models.DateTimeField):
        adapt = connection.ops.adapt_datetimefield_value
        return lambda v: None if v is None else adapt(v)
    if isinstance(field, models.DecimalField):
        adapt = connection.ops.adapt_decimalfield_value
        return lambda v: None if v is None else adapt(v, field.max_digits, field.decimal_places)
    if isinstance(field, PASS_THROUGH):
        return lambda v: v
    return lambda v: field.get_db_prep_save(v, connection)


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
    prepare = [(f.attname, _preparer(f)) for f in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_batch = max(1, min(500, (connection.features.max_query_params or 999) // len(fields)))
    with connection.cursor() as cursor:
        for start in range(0, len(objs), per_batch):
            batch = objs[start:start + per_batch]
            params = [prep(getattr(obj, name)) for obj in batch for name, prep in prepare]
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * len(batch))} "
                f"RETURNING {quote(meta.pk.column)}",
                params,
            )
            for obj, (pk,) in zip(batch, cursor.fetchall(), strict=True):
                obj.pk = pk
                obj._state.adding = False
    return list(objs)
