from django.db import models


class UsageRecord(models.Model):
    """One gateway request: who, which model, tokens, timing, outcome, cost and what it would have
    cost on the reference paid model. Written in batches off the request path (analytics.recorder).

    `uid` makes each record idempotent: the recorder inserts with conflicts ignored, so a batch written
    twice (a retry after a partial failure, a replayed spill file) stores each request once. The
    client's `request_id` is not unique: two requests may send the same one, and a task records one
    row per model it tried under the task's id."""

    uid = models.CharField(max_length=32, unique=True, null=True, editable=False)  # null: rows from before it
    ts = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=64)
    key_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    key_name = models.CharField(max_length=128, blank=True, default="")
    endpoint = models.CharField(max_length=32)
    requested_model = models.CharField(max_length=320)
    model = models.ForeignKey("registry.AIModel", on_delete=models.SET_NULL, null=True, blank=True)
    public_id = models.CharField(max_length=320, blank=True, default="")
    provider = models.CharField(max_length=64, blank=True, default="")
    is_free = models.BooleanField(default=False)
    stream = models.BooleanField(default=False)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    overhead_ms = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=32, default="ok")  # ok, or the error type
    http_status = models.PositiveSmallIntegerField(default=200)
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    reference_cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    reference_model = models.CharField(max_length=320, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["model", "ts"]), models.Index(fields=["provider", "ts"])]
        ordering = ["-ts"]
