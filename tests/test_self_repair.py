"""Issue 16: workers that stay up and clean up, repairs that run themselves. Each test injects
the fault on real servers: its own Redis it can stop, `kill -9` of a real worker, Redis emptied."""
import contextlib
import json
import os
import signal
import time

import sqlalchemy as sa

from saas.ai.models import AiJob
from saas.billing.models import StripeEvent
from saas.core.time import utcnow
from saas.extensions import db
from saas.usage.models import UsageRecord
from saas.usage.service import forget_expired_reservations
from saas.users.models import User
from tests.ai_support import JOBS, messages
from tests.billing_support import deliver_ok
from tests.conftest import make_app
from tests.fake_stripe import make_event
from tests.helpers import bearer, sign_up
from tests.servers import own_redis, process_output, start_rq_worker, stop_process

SWEEPING = {"SWEEP_INTERVAL_SECONDS": "5"}


def wait_until(condition, timeout=60, step=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if condition():
            return True
        time.sleep(step)
    return False


def process_tree(pid):
    """The pid and all its descendants, parents first."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [pid] + [each for child in children.read().split() for each in process_tree(int(child))]
    except FileNotFoundError:
        return [pid]


def kill_tree(pid):
    for each in process_tree(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


def test_the_worker_make_worker_starts_survives_a_redis_outage(database, fake_stripe):
    with own_redis() as own:
        worker = start_rq_worker(REDIS_URL=own.url, **SWEEPING)
        try:
            time.sleep(3)
            own.stop()
            time.sleep(8)  # Redis away for a while: the worker must not give up
            assert worker.poll() is None, process_output(worker)
            own.start()
            app = make_app(REDIS_URL=own.url)
            with app.app_context():
                client = app.test_client()
                user_id = client.post(
                    "/api/v1/auth/register", json={"email": "outage@example.com", "password": "engines weave patterns"}
                ).get_json()["id"]
                assert wait_until(lambda: db.session.get(User, user_id).stripe_customer_id is not None, timeout=60), (
                    process_output(worker)
                )
                db.session.remove()
            assert worker.poll() is None
            said = [json.loads(line) for line in process_output(worker).splitlines() if "redis" in line.lower()]
            # Where the outage caught it decides who says so: RQ's reconnecting loop, or the
            # worker's own restart (saas.worker.main); either way in a JSON line.
            assert any(("could not connect to redis" in line["message"].lower()
                        or "redis unavailable" in line["message"].lower()) for line in said), said
        finally:
            stop_process(worker)


def test_redis_restarted_empty_loses_no_acknowledged_work(app, client, fake_stripe, fake_openai, redis_client):
    """Webhooks acknowledged, customers and usage reports queued: Redis then loses its data. The
    sweeps rebuild every piece from PostgreSQL, with nobody running a command."""
    token = sign_up(client, "lost@example.com")
    user = db.session.scalar(sa.select(User).where(User.email == "lost@example.com"))
    customer = fake_stripe.add_customer("lost@example.com")["id"]
    subscription = fake_stripe.add_subscription(customer, "price_pro", metadata={"user_id": str(user.id)})
    deliver_ok(client, make_event("customer.subscription.created", subscription))
    assert client.post("/api/v1/ai/chat", json={"messages": messages()}, headers=bearer(token)).status_code == 200
    redis_client.flushall()  # Redis restarted empty: every queued job is gone

    worker = start_rq_worker(**SWEEPING)
    try:
        assert wait_until(
            lambda: db.session.scalar(sa.select(StripeEvent.processed_at)) is not None
            and db.session.get(User, user.id).stripe_customer_id is not None
            and db.session.scalar(sa.select(UsageRecord.reported_at)) is not None,
            timeout=90,
        ), process_output(worker)
    finally:
        stop_process(worker)
    assert db.session.get(User, user.id).plan == "pro"
    assert len(fake_stripe.meter_events) == 1


def test_an_ai_job_whose_worker_is_killed_fails_within_a_minute_and_gives_its_quota_back_after_its_longest_run(
    client, fake_openai, redis_client
):
    fake_openai.mode, fake_openai.delay = "slow", 60
    token = sign_up(client, "killed@example.com")
    job = client.post(JOBS, json={"messages": messages()}, headers=bearer(token)).get_json()
    first = start_rq_worker(**SWEEPING, AI_TIMEOUT="120")
    try:
        assert wait_until(lambda: db.session.get(AiJob, job["id"]).status == "running", timeout=30)
        kill_tree(first.pid)  # the worker and the work horse running the job, as an OOM kill would
    finally:
        stop_process(first)
    killed_at = time.monotonic()

    second = start_rq_worker(**SWEEPING, AI_TIMEOUT="120")
    try:
        assert wait_until(lambda: db.session.get(AiJob, job["id"]).status == "failed", timeout=90), process_output(second)
        assert time.monotonic() - killed_at < 75
        # The killed worker's retry scheduler is taken over too (its lock lives 61 s in Redis).
        assert wait_until(lambda: "Acquired scheduler lock for high" in process_output(second), timeout=90), (
            process_output(second)
        )
        assert time.monotonic() - killed_at < 100
    finally:
        stop_process(second)
    read = client.get(f"{JOBS}/{job['id']}", headers=bearer(token)).get_json()
    assert "interrupted" in read["error"]["message"]
    # A worker that only stalled looks the same from here, and its job may still be running and
    # settle: the reservation holds until the job's longest run is over (RQ ends it by then).
    assert client.get("/api/v1/usage", headers=bearer(token)).get_json()["reserved"] > 0
    db.session.execute(sa.update(UsageRecord).values(expires_at=utcnow()))  # that time, come
    db.session.commit()
    assert client.get("/api/v1/usage", headers=bearer(token)).get_json()["reserved"] == 0
    assert forget_expired_reservations() == 1


def test_a_webhook_whose_job_failed_and_was_lost_is_applied_without_a_human(client, fake_stripe, redis_client):
    """Stripe was told 200, the event's job failed (Stripe down) and Redis then lost the retry:
    the stored event is applied by the sweep."""
    user_id = client.post(
        "/api/v1/auth/register", json={"email": "hook@example.com", "password": "engines weave patterns"}
    ).get_json()["id"]
    customer = fake_stripe.add_customer("hook@example.com")["id"]
    subscription = fake_stripe.add_subscription(customer, "price_pro", metadata={"user_id": str(user_id)})
    fake_stripe.mode = "down"  # the event's own job fails: stored, acknowledged, not applied
    deliver_ok(client, make_event("customer.subscription.created", subscription))
    redis_client.flushall()
    fake_stripe.mode = "ok"
    worker = start_rq_worker(**SWEEPING)
    try:
        assert wait_until(lambda: db.session.get(User, user_id).plan == "pro", timeout=60), process_output(worker)
    finally:
        stop_process(worker)


def test_a_repair_whose_statement_fails_does_not_fail_the_repairs_after_it(app_with, monkeypatch):
    """A database error aborts the session's transaction; the sweep rolls it back, so the next
    repairs still run (they used to fail one after the other with 'transaction is aborted')."""
    from saas import sweeps

    app_with()

    def broken_repair():
        db.session.execute(sa.text("SELECT * FROM no_such_table"))

    monkeypatch.setattr(sweeps, "REPAIRS", {"broken": broken_repair, **sweeps.REPAIRS})
    outcome = sweeps.sweep()
    assert outcome.pop("broken") == "error"
    assert "error" not in outcome.values(), outcome
