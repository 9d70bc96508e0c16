"""The usage recorder: each request stored exactly once, through bad rows, partial failures, an
unreachable database and a full memory buffer (spilled to files and replayed)."""

from __future__ import annotations

import time

import pytest
from django.db import OperationalError

from analytics import recorder as recorder_module
from analytics.models import UsageRecord
from analytics.recorder import Outcome, Recorder, request_id_for, write
from registry import services
from registry.fakes import KEY
from registry.models import HealthSample


@pytest.fixture
def rec(settings, tmp_path):
    """A recorder of its own whose writer thread waits to be asked (tests call flush)."""
    settings.AFMTS_USAGE_FLUSH_SECONDS = 3600
    settings.AFMTS_USAGE_SPILL_DIR = str(tmp_path / "spill")
    made = Recorder()
    yield made
    made._stopping = True
    made._wake.set()


@pytest.fixture
def model(fake, db):
    services.provider_create(slug="groq", kind="groq", base_url=fake.base_url("groq"), api_key=KEY)
    return services.model_register(provider_slug="groq", provider_kind="groq", endpoint=None, api_key=None, model_fields={
        "name": "llama", "model_id": "llama-3.1-8b-instant", "is_free": True,
        "capabilities": ["text-generation"], "context_window": 131072,
    })[0]


@pytest.fixture(autouse=True)
def quiet_process_recorder():
    """These tests count rows: the process's own recorder must not write an earlier test's leftovers
    (a batch it kept after a failed write) into their database meanwhile."""
    from analytics.recorder import recorder

    with recorder._flush_lock:
        recorder._kept, recorder._failures = [], 0
        recorder.take()
    yield


def outcome(n: int = 0, *, model=None, **fields) -> Outcome:
    made = Outcome(ts=time.time(), request_id=f"req-{n}", endpoint="chat.completions", requested_model="auto",
                   **{"tokens_in": 10, "tokens_out": 5, **fields})
    if model is not None:
        made.model_pk, made.public_id, made.provider, made.is_free = model.pk, "groq/llama-3.1-8b-instant", "groq", True
        made.samples = [(model.pk, True, 12.0, "")]
    return made


def unreachable(*args, **kwargs):
    raise OperationalError("connection refused")


def test_usable_request_ids_are_kept_and_others_replaced():
    assert request_id_for("req-42_a.b:c") == "req-42_a.b:c"
    for bad in ("x" * 65, "two words", "é", "", None, "a\nb"):
        replaced = request_id_for(bad)
        assert replaced != bad and replaced.startswith("req_") and len(replaced) <= 64


def test_an_overlong_request_id_does_not_fail_its_batch(db):
    # A task id (or any caller's id) longer than the column failed the whole batch on PostgreSQL.
    batch = [outcome(n) for n in range(20)] + [Outcome(ts=time.time(), request_id="t" * 100, endpoint="tasks.route",
                                                       requested_model="auto")]

    write(batch)

    assert UsageRecord.objects.count() == 21


def test_a_batch_written_twice_stores_each_request_once(model):
    batch = [outcome(n, model=model) for n in range(3)]

    assert write(batch) == 3
    assert write(batch) == 0

    assert UsageRecord.objects.count() == 3
    assert HealthSample.objects.filter(model=model).count() == 3  # evidence follows only the new rows


def test_a_failure_after_the_rows_are_written_does_not_duplicate_them(rec, model, monkeypatch):
    from registry import health

    real, calls = health.health_record, []

    def fails_once(samples, **kwargs):
        calls.append(len(samples))
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(samples, **kwargs)

    monkeypatch.setattr(health, "health_record", fails_once)
    for n in range(3):
        rec.add(outcome(n, model=model))

    rec.flush()
    rec.flush()

    assert UsageRecord.objects.count() == 3
    assert rec.dropped == 0


def test_two_requests_with_the_same_client_id_are_two_records(rec, db):
    rec.add(outcome(7))
    rec.add(outcome(7))

    assert rec.flush() == 2
    assert UsageRecord.objects.filter(request_id="req-7").count() == 2


def test_an_unreachable_database_keeps_the_batch_until_it_is_back(rec, db, monkeypatch):
    real = recorder_module.insert_rows
    monkeypatch.setattr(recorder_module, "insert_rows", unreachable)
    for n in range(3):
        rec.add(outcome(n))

    assert rec.flush() == 0
    rec.add(outcome(3))
    assert rec.flush() == 0
    assert rec.pending() == 4 and UsageRecord.objects.count() == 0

    monkeypatch.setattr(recorder_module, "insert_rows", real)
    assert rec.flush() == 4
    assert UsageRecord.objects.count() == 4 and rec.pending() == 0 and rec.dropped == 0


def test_past_the_memory_bound_records_spill_to_a_file_and_are_replayed(rec, db, settings, monkeypatch):
    settings.AFMTS_USAGE_BUFFER_MAX = 5
    real = recorder_module.insert_rows
    monkeypatch.setattr(recorder_module, "insert_rows", unreachable)
    for n in range(12):
        rec.add(outcome(n))

    rec.flush()

    files = list(rec.spill_dir().glob("*.jsonl"))
    assert rec.pending() == 5 and rec.spilled == 7 and len(files) == 1
    assert len(files[0].read_bytes().splitlines()) == 7

    monkeypatch.setattr(recorder_module, "insert_rows", real)
    rec.flush()

    assert sorted(UsageRecord.objects.values_list("request_id", flat=True)) == sorted(f"req-{n}" for n in range(12))
    assert list(rec.spill_dir().iterdir()) == [] and rec.dropped == 0


def test_spill_files_left_by_another_process_are_replayed_once(rec, db, settings, monkeypatch):
    settings.AFMTS_USAGE_BUFFER_MAX = 0
    real = recorder_module.insert_rows
    monkeypatch.setattr(recorder_module, "insert_rows", unreachable)
    for n in range(4):
        rec.add(outcome(n))
    rec.flush()  # all four spill: the process "dies" with them on disk
    monkeypatch.setattr(recorder_module, "insert_rows", real)

    other = Recorder()
    assert other.flush() == 0  # nothing buffered, but the files are replayed
    Recorder().flush()

    assert UsageRecord.objects.count() == 4


def test_a_record_that_cannot_be_spilled_is_counted_as_dropped(rec, db, settings, tmp_path, monkeypatch):
    settings.AFMTS_USAGE_BUFFER_MAX = 2
    (tmp_path / "not-a-folder").write_text("")
    settings.AFMTS_USAGE_SPILL_DIR = str(tmp_path / "not-a-folder")
    monkeypatch.setattr(recorder_module, "insert_rows", unreachable)
    for n in range(5):
        rec.add(outcome(n))

    rec.flush()

    assert rec.dropped == 3 and rec.pending() == 2


def test_a_row_the_database_refuses_is_dropped_alone(rec, db):
    for n in range(6):
        rec.add(outcome(n))
    rec.add(outcome(99, tokens_in=-1))  # a negative count breaks the column's check

    rec.flush()

    assert UsageRecord.objects.count() == 6 and rec.dropped == 1


def test_the_writer_thread_writes_without_being_asked(settings, transactional_db, tmp_path):
    # Usage recorded outside the gateway (run_task in a worker or a sync view) was never written.
    settings.AFMTS_USAGE_FLUSH_SECONDS = 0.1
    settings.AFMTS_USAGE_SPILL_DIR = str(tmp_path)
    made = Recorder()
    try:
        made.add(outcome(1))
        deadline = time.monotonic() + 10
        while not UsageRecord.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert UsageRecord.objects.count() == 1
    finally:
        made.close()


def test_close_writes_what_is_left_and_stops_the_writer(settings, transactional_db, tmp_path):
    settings.AFMTS_USAGE_FLUSH_SECONDS = 3600
    settings.AFMTS_USAGE_SPILL_DIR = str(tmp_path)
    made = Recorder()
    outcomes = [outcome(n) for n in range(3)]
    for o in outcomes:
        made.add(o)
    thread = made._thread

    assert made.close() == 3

    # Counted by uid: the process's own recorder may write a leftover of an earlier test meanwhile.
    assert UsageRecord.objects.filter(uid__in=[o.uid for o in outcomes]).count() == 3
    assert not thread.is_alive()


def test_a_big_batch_goes_in_as_statements_small_enough_not_to_stall_the_loop(model):
    """The writer shares the GIL with the gateway's event loop, and a statement's parameters are
    bound (on SQLite its text rewritten too) in one C call that holds it: a second's worth of
    records under load went in as one statement of 10,000 parameters, a stall of several ms."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from registry.bulk import STATEMENT_PARAMS_BESIDE_A_LOOP

    batch = [outcome(n, model=model) for n in range(1200)]
    with CaptureQueriesContext(connection) as queries:
        assert write(batch) == 1200

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT INTO")]
    tables = {sql.split('"')[1] for sql in inserts}
    # Evidence rows go by COPY on PostgreSQL (a row at a time, not in the log).
    assert tables >= ({"analytics_usagerecord"} if connection.vendor == "postgresql"
                      else {"analytics_usagerecord", "registry_healthsample"})
    # `?` on SQLite, `%s` on PostgreSQL as logged
    assert max(sql.count("?") + sql.count("%s") for sql in inserts) <= STATEMENT_PARAMS_BESIDE_A_LOOP
    assert UsageRecord.objects.count() == 1200 and HealthSample.objects.filter(model=model).count() == 1200
