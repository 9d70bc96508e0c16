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


class Resolution(models.TextChoices):
    MINUTE = "m", "minute"
    HOUR = "h", "hour"
    DAY = "d", "day"


class OutcomeClass(models.TextChoices):
    """What became of a request, as rollups and reports count it (analytics.rollups.outcome_of)."""

    OK = "ok", "ok"
    CLIENT = "client", "client error (4xx)"
    RATE_LIMITED = "rate_limited", "rate limited (429)"
    UPSTREAM = "upstream", "upstream error (5xx)"
    TIMEOUT = "timeout", "timeout"
    CANCELLED = "cancelled", "cancelled"
    STREAM_INTERRUPTED = "stream_interrupted", "stream interrupted"


class UsageRollup(models.Model):
    """Usage of one (model, provider, API key, endpoint, outcome) in one minute, hour or day (UTC).

    Built by analytics.rollups from the raw records (minutes, and hours whose minutes are gone) and
    from the finer rollups (hours from minutes, days from hours); every field merges by addition, so
    a bucket rebuilt gives the same row. `lat_hist`/`ttft_hist` are analytics.histogram histograms.
    Rows of every key together (`key_id` EVERY_KEY, hours and days only) have an empty endpoint and
    outcome: they are merged over both. `model_pk` and `key_id` are 0 when the request had none (a plain integer, not a foreign key: a
    rollup outlives the model or key it counts)."""

    res = models.CharField(max_length=1, choices=Resolution.choices)
    start = models.DateTimeField()
    model_pk = models.BigIntegerField(default=0)
    public_id = models.CharField(max_length=320, blank=True, default="")
    provider = models.CharField(max_length=64, blank=True, default="")
    key_id = models.BigIntegerField(default=0)
    endpoint = models.CharField(max_length=32)
    outcome = models.CharField(max_length=20, choices=OutcomeClass.choices)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    free = models.PositiveIntegerField(default=0)  # requests served by a free model
    failovers = models.PositiveIntegerField(default=0)  # attempts beyond the first
    tokens_in = models.BigIntegerField(default=0)
    tokens_out = models.BigIntegerField(default=0)
    lat_count = models.PositiveIntegerField(default=0)
    # Sums in whole microseconds: integer addition is exact, so a rebuilt bucket is identical
    # whatever order its rows are merged in (floats would differ in the last bits).
    lat_sum_us = models.BigIntegerField(default=0)
    lat_hist = models.BinaryField(default=b"")
    ttft_count = models.PositiveIntegerField(default=0)
    ttft_sum_us = models.BigIntegerField(default=0)
    ttft_hist = models.BinaryField(default=b"")
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    reference_cost = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    savings = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    unpriced = models.PositiveIntegerField(default=0)  # requests whose cost is unknown (no price)
    # Errors by class as columns too: the every-key rows (analytics.rollups.EVERY_KEY) merge the
    # endpoint and outcome dimensions away and keep the classes here.
    err_client = models.PositiveIntegerField(default=0)
    err_rate_limited = models.PositiveIntegerField(default=0)
    err_upstream = models.PositiveIntegerField(default=0)
    err_timeout = models.PositiveIntegerField(default=0)
    err_cancelled = models.PositiveIntegerField(default=0)
    err_stream = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["res", "start"]),
            models.Index(fields=["res", "model_pk", "start"]),
            models.Index(fields=["res", "key_id", "start"]),
        ]
        ordering = ["-start"]

    def __str__(self) -> str:
        return f"{self.get_res_display()} {self.start:%Y-%m-%d %H:%M} {self.public_id or '-'} {self.outcome}"


class RollupDirty(models.Model):
    """A minute whose rollups must be (re)built: written with the usage rows, in their transaction,
    so a mark is never seen before its rows. The builder deletes the marks it has handled, by id."""

    minute = models.DateTimeField()
