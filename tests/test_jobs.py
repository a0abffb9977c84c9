"""Background jobs: queued by priority, run by the worker `make worker` starts (and by the plain
`rq worker` CLI), which builds the app once; Stripe customers are created that way."""
import json

import sqlalchemy as sa
from rq import Queue
from rq.job import Job

from saas.ai.models import AiJob
from saas.billing.models import StripeEvent
from saas.core.queue import DEFAULT_BACKOFF
from saas.extensions import db
from saas.users.models import User
from tests.billing_support import deliver_ok
from tests.conftest import REDIS_URL, make_app
from tests.fake_stripe import make_event
from tests.helpers import PASSWORD, bearer, sign_up
from tests.servers import run_rq_worker_burst


def _stored_customer_id(user_id):
    return db.session.scalar(sa.select(User.stripe_customer_id).where(User.id == user_id))


def test_signup_queues_the_customer_job_and_the_plain_rq_cli_runs_it(client, fake_stripe, redis_client):
    user = client.post("/api/v1/auth/register", json={"email": "job@example.com", "password": PASSWORD}).get_json()
    assert user["stripe_customer_id"] is None
    assert fake_stripe.requests_to("POST", "/v1/customers") == []
    queued = [job.func_name for job in Queue("high", connection=redis_client).jobs]
    assert sorted(queued) == ["saas.billing.jobs.create_stripe_customer", "saas.mail.service.deliver"]

    result = run_rq_worker_burst(plain_cli=True)
    assert result.returncode == 0, result.stdout + result.stderr

    db.session.expire_all()
    customer_id = _stored_customer_id(user["id"])
    assert customer_id and customer_id in fake_stripe.customers
    created = fake_stripe.requests_to("POST", "/v1/customers")
    assert len(created) == 1
    assert created[0].params["metadata"]["user_id"] == str(user["id"])
    assert created[0].headers["Idempotency-Key"].startswith(f"saas-customer-create-user-{user['id']}-")


def test_a_failed_customer_job_is_scheduled_for_retry_with_backoff(client, fake_stripe, redis_client):
    fake_stripe.mode = "down"
    client.post("/api/v1/auth/register", json={"email": "retry@example.com", "password": PASSWORD})
    [job_id] = [job.id for job in Queue("high", connection=redis_client).jobs if job.func_name.endswith("customer")]

    result = run_rq_worker_burst()
    assert result.returncode == 0, result.stdout + result.stderr

    job = Job.fetch(job_id, connection=redis_client)
    assert job.get_status() == "scheduled"
    assert job.retries_left == len(DEFAULT_BACKOFF) - 1
    assert job.retry_intervals == DEFAULT_BACKOFF


def test_billing_creates_the_missing_customer_on_demand_with_the_same_key(client, fake_stripe):
    user = client.post("/api/v1/auth/register", json={"email": "od@example.com", "password": PASSWORD}).get_json()
    token = client.post("/api/v1/auth/login", json={"email": "od@example.com", "password": PASSWORD}).get_json()["access_token"]
    response = client.get("/api/v1/billing/customer-portal", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    run_rq_worker_burst()  # the queued signup job now finds the customer already there

    db.session.expire_all()
    assert _stored_customer_id(user["id"]) in fake_stripe.customers
    assert len(fake_stripe.customers) == 1
    keys = {r.headers["Idempotency-Key"] for r in fake_stripe.requests_to("POST", "/v1/customers")}
    assert len(keys) == 1


def test_signup_succeeds_when_redis_is_down(database, fake_stripe):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://")
    response = app.test_client().post("/api/v1/auth/register", json={"email": "nored@example.com", "password": PASSWORD})
    assert response.status_code == 201
    assert fake_stripe.requests_to("POST", "/v1/customers") == []


def test_without_redis_the_job_runs_inline(database, fake_stripe):
    app = make_app(REDIS_URL="")
    response = app.test_client().post("/api/v1/auth/register", json={"email": "inline@example.com", "password": PASSWORD})
    assert response.status_code == 201
    assert len(fake_stripe.requests_to("POST", "/v1/customers")) == 1


def test_without_redis_signup_succeeds_when_stripe_is_down(database, fake_stripe):
    fake_stripe.mode = "down"
    app = make_app(REDIS_URL="")
    response = app.test_client().post("/api/v1/auth/register", json={"email": "down@example.com", "password": PASSWORD})
    assert response.status_code == 201
    assert response.get_json()["stripe_customer_id"] is None


def test_the_sweeper_command_creates_missing_customers(client, fake_stripe):
    client.post("/api/v1/auth/register", json={"email": "sweep@example.com", "password": PASSWORD})
    result = client.application.test_cli_runner().invoke(args=["billing", "ensure-customers"])
    assert result.exit_code == 0, result.output
    assert "created 1 customers" in result.output
    assert len(fake_stripe.customers) == 1


def test_the_worker_logs_its_own_lines_as_json(client, fake_stripe):
    client.post("/api/v1/auth/register", json={"email": "jsonlog@example.com", "password": PASSWORD})
    result = run_rq_worker_burst()
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    worker_lines = [record for record in records if record["logger"] == "rq.worker"]
    assert any("create_stripe_customer" in record["message"] for record in worker_lines)
    assert all({"time", "level", "message"} <= set(record) for record in records)


def test_a_burst_of_ai_jobs_does_not_delay_billing_work(client, fake_stripe, fake_openai, redis_client):
    """AI jobs wait on `default`; a webhook queued after them on `high` is applied first."""
    token = sign_up(client, "burst@example.com")
    user = client.get("/api/v1/users/me", headers=bearer(token)).get_json()
    job_ids = [
        client.post("/api/v1/ai/jobs", json={"messages": [{"role": "user", "content": "hi"}]}, headers=bearer(token)).get_json()["id"]
        for _ in range(4)  # AI_MAX_CONCURRENT: the most one user may queue
    ]
    customer = fake_stripe.add_customer("burst@example.com")["id"]
    subscription = fake_stripe.add_subscription(customer, "price_pro", metadata={"user_id": str(user["id"])})
    deliver_ok(client, make_event("customer.subscription.created", subscription))
    assert Queue("default", connection=redis_client).count == 4
    assert Queue("high", connection=redis_client).count >= 2  # the customer job and the event

    result = run_rq_worker_burst()
    assert result.returncode == 0, result.stdout + result.stderr

    db.session.expire_all()
    [event] = db.session.scalars(sa.select(StripeEvent)).all()
    started = db.session.scalars(sa.select(AiJob.started_at).where(AiJob.id.in_(job_ids))).all()
    assert event.processed_at is not None and len(started) == 4
    assert event.processed_at < min(started)
    assert user["id"]  # the customer job (high) ran too: every job is done
    assert Queue("high", connection=redis_client).count == Queue("default", connection=redis_client).count == 0


def test_the_worker_builds_the_app_once_not_per_job(client, fake_stripe):
    for number in range(3):
        client.post("/api/v1/auth/register", json={"email": f"once{number}@example.com", "password": PASSWORD})
    result = run_rq_worker_burst()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Successfully completed") + result.stdout.count("Job OK") >= 3
    assert "building an app for this job" not in result.stdout + result.stderr
