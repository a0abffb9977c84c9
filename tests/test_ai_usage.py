"""Usage: monthly quotas per plan (reserve, then settle) and metered billing through Stripe."""
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests
import sqlalchemy as sa
from rq import Queue, Retry
from rq.job import Job

from config import parse_quotas
from saas.billing.models import Subscription
from saas.billing.entitlements import refresh_plan
from saas.extensions import db
from saas.usage.jobs import meter_event_identifier, report_usage_to_stripe
from saas.usage.models import UsageRecord
from saas.users.models import User
from tests.ai_support import (
    API_KEYS,
    CHAT,
    LONG_REPLY,
    USAGE,
    messages,
    usage_records,
)
from tests.helpers import PASSWORD, bearer, personal_org_id, sign_up
from tests.servers import gunicorn, run_rq_worker_burst


def resets_at():
    """The start of next month (UTC), as the API writes it; read during the test, never at
    import (conftest keeps a test from straddling two months)."""
    next_month = (datetime.now(timezone.utc).replace(day=1) + timedelta(days=32)).replace(day=1)
    return next_month.strftime("%Y-%m-%dT00:00:00")


def _chat(client, token, **fields):
    return client.post(CHAT, json={"messages": messages("hi there"), **fields}, headers=bearer(token))


def _run_worker():
    result = run_rq_worker_burst()
    assert result.returncode == 0, result.stdout + result.stderr


def test_usage_shows_used_quota_remaining_and_reset(client, tokens):
    _chat(client, tokens["access_token"])
    usage = client.get(USAGE, headers=bearer(tokens["access_token"])).get_json()
    assert usage["plan"] == "free"
    assert (usage["quota"], usage["used"], usage["reserved"], usage["remaining"]) == (20000, 12, 0, 19988)
    assert usage["resets_at"].startswith(resets_at())
    assert usage["period_start"] < usage["resets_at"]


def test_usage_is_readable_with_an_api_key(client, tokens):
    key = client.post(API_KEYS, json={"name": "usage"}, headers=bearer(tokens["access_token"])).get_json()["key"]
    assert client.get(USAGE, headers={"X-API-Key": key}).get_json()["used"] == 0


def test_a_subscriber_gets_their_plans_quota(client, tokens, user):
    db.session.add(
        Subscription(
            stripe_subscription_id="sub_test", user_id=user["id"], org_id=personal_org_id(user),
            stripe_customer_id="cus_test",
            status="active", price_id="price_pro", plan="pro",
        )
    )
    refresh_plan(db.session.get(User, user["id"]).personal_org)
    db.session.commit()
    usage = client.get(USAGE, headers=bearer(tokens["access_token"])).get_json()
    assert (usage["plan"], usage["quota"]) == ("pro", 2000000)


def test_plan_quotas_are_read_as_whole_token_counts():
    assert parse_quotas("free:20000, pro:2000000") == {"free": 20000, "pro": 2000000}
    for wrong in ("free", "free:lots", "free:-5"):
        with pytest.raises(ValueError, match="PLAN_QUOTAS"):
            parse_quotas(wrong)


def test_a_call_that_would_pass_the_quota_is_refused_with_429(app_with, fake_openai):
    # A call reserves its prompt estimate (7) plus max_tokens (100); it then uses 12.
    client = app_with(PLAN_QUOTAS="free:110,pro:1000")
    token = sign_up(client)
    assert _chat(client, token).status_code == 200

    refused = _chat(client, token)
    assert refused.status_code == 429
    body = refused.get_json()
    assert "free plan allows 110 tokens a month" in body["message"]
    assert resets_at() in body["message"]
    assert body["errors"]["quota"] == {
        "plan": "free", "limit": 110, "used": 12, "reserved": 0, "requested": 107,
        "resets_at": resets_at() + "Z",
    }
    assert 0 < int(refused.headers["Retry-After"]) <= 31 * 24 * 3600
    assert len(fake_openai.completions()) == 1

    smaller = _chat(client, token, max_tokens=50)
    assert smaller.status_code == 200


def test_a_reservation_counts_until_it_expires(client, tokens, user):
    now = datetime.now(timezone.utc)
    for tokens_held, expires_at in ((19000, now - timedelta(minutes=1)), (300, now + timedelta(minutes=5))):
        db.session.add(
            UsageRecord(
                user_id=user["id"], org_id=personal_org_id(user), model="fake-model", status="reserved",
                reserved_tokens=tokens_held,
                created_at=now - timedelta(minutes=10), expires_at=expires_at,
            )
        )
    db.session.commit()
    usage = client.get(USAGE, headers=bearer(tokens["access_token"])).get_json()
    assert (usage["used"], usage["reserved"]) == (0, 300)


def test_concurrent_calls_cannot_push_a_user_past_the_quota(client, fake_openai):
    # Each call reserves 107 and uses 102 (100 output tokens of a long reply): two fit in 300.
    # Without reservations all eight would see 0 used and go through.
    fake_openai.reply = LONG_REPLY
    fake_openai.mode, fake_openai.delay = "slow", 1.0
    with gunicorn(PLAN_QUOTAS="free:300") as base:
        requests.post(f"{base}/api/v1/auth/register", json={"email": "race@example.com", "password": PASSWORD}, timeout=10)
        token = requests.post(
            f"{base}/api/v1/auth/login", json={"email": "race@example.com", "password": PASSWORD}, timeout=10
        ).json()["access_token"]

        def call(_):
            return requests.post(f"{base}{CHAT}", json={"messages": messages("hi there")}, headers=bearer(token), timeout=30)

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(call, range(8)))

    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) == {200, 429}, statuses
    used = sum(record.input_tokens + record.output_tokens for record in usage_records())
    assert used <= 300
    assert len(fake_openai.completions()) == statuses.count(200) == 2


def test_usage_is_reported_to_the_stripe_meter_by_a_real_worker(client, tokens, user, fake_stripe):
    _chat(client, tokens["access_token"])
    _run_worker()  # the signup's customer job and the usage report

    [record] = usage_records()
    [event] = fake_stripe.meter_events
    customer_id = db.session.get(User, user["id"]).stripe_customer_id
    assert event["event_name"] == "ai_tokens"
    assert event["payload"] == {"stripe_customer_id": customer_id, "value": "12"}
    assert event["identifier"] == meter_event_identifier(record)
    assert event["timestamp"] == int(record.created_at.timestamp())
    assert record.reported_at is not None

    _run_worker()
    assert len(fake_stripe.meter_events) == 1


def test_a_retried_report_is_counted_once_by_stripe(app_with, fake_stripe, redis_client):
    client = app_with(STRIPE_METER_EVENT_NAME="")  # this app queues no report; the test does
    _chat(client, sign_up(client))
    _run_worker()  # creates the Stripe customer
    [record] = usage_records()

    # Stripe stores the event but answers after the client gave up (STRIPE_TIMEOUT is 2 s), so
    # the job fails and RQ retries it.
    fake_stripe.mode, fake_stripe.delay = "slow", 3
    queued = Queue("high", connection=redis_client).enqueue(
        report_usage_to_stripe, record.id, retry=Retry(max=2, interval=1)
    )
    _run_worker()
    assert Job.fetch(queued.id, connection=redis_client).get_status() == "scheduled"
    deadline = time.monotonic() + 5
    while not fake_stripe.meter_events and time.monotonic() < deadline:
        time.sleep(0.1)
    fake_stripe.mode = "ok"
    time.sleep(1)  # the retry is due

    _run_worker()
    assert Job.fetch(queued.id, connection=redis_client).get_status() == "finished"
    assert len(fake_stripe.meter_events) == 1
    assert fake_stripe.meter_events[0]["identifier"] == meter_event_identifier(record)
    assert usage_records()[0].reported_at is not None


def test_a_report_stripe_already_has_under_its_identifier_is_not_sent_again(client, tokens, fake_stripe):
    response = _chat(client, tokens["access_token"])
    [record] = usage_records()
    # As if an earlier attempt had got through before its idempotency key expired.
    fake_stripe.meter_events.append({"identifier": meter_event_identifier(record), "payload": {}})
    _run_worker()

    assert len(fake_stripe.meter_events) == 1
    assert usage_records()[0].reported_at is not None
    assert response.status_code == 200


def test_the_sweeper_reports_usage_whose_job_never_ran(app_with, fake_stripe):
    client = app_with(STRIPE_METER_EVENT_NAME="")  # as if the report could not be queued
    _chat(client, sign_up(client))
    _chat(client, sign_up(client, "second@example.com"), max_tokens=2)

    billed = app_with()
    runner = billed.application.test_cli_runner()
    result = runner.invoke(args=["billing", "report-usage"])
    assert result.exit_code == 0, result.output
    assert "reported 2 usage records, 0 failed" in result.output
    assert sorted(int(event["payload"]["value"]) for event in fake_stripe.meter_events) == [4, 12]

    again = runner.invoke(args=["billing", "report-usage"])
    assert "reported 0 usage records" in again.output
    assert len(fake_stripe.meter_events) == 2


def test_nothing_is_reported_without_a_meter(app_with, fake_stripe, redis_client):
    client = app_with(STRIPE_METER_EVENT_NAME="")
    _chat(client, sign_up(client))
    queued = [job.func_name for job in Queue("high", connection=redis_client).jobs]
    assert not any("report_usage" in name for name in queued)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UsageRecord)) == 1
