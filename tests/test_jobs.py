"""Stripe customers are created by a background job, never inside the signup request."""
import json

import sqlalchemy as sa
from rq import Queue
from rq.job import Job

from saas.extensions import db
from saas.core.queue import DEFAULT_BACKOFF
from saas.users.models import User
from tests.conftest import REDIS_URL, make_app
from tests.helpers import PASSWORD
from tests.servers import run_rq_worker_burst


def _stored_customer_id(user_id):
    return db.session.scalar(sa.select(User.stripe_customer_id).where(User.id == user_id))


def test_signup_queues_the_customer_job_and_a_real_rq_worker_creates_it(client, fake_stripe, redis_client):
    user = client.post("/api/v1/auth/register", json={"email": "job@example.com", "password": PASSWORD}).get_json()
    assert user["stripe_customer_id"] is None
    assert fake_stripe.requests_to("POST", "/v1/customers") == []
    assert Queue("high", connection=redis_client).count == 1

    result = run_rq_worker_burst()
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
    job_id = Queue("high", connection=redis_client).job_ids[0]

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
    assert len(keys) <= 1


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
