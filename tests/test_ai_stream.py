"""Streamed chat: Server-Sent Events relayed token by token, read by a real client via gunicorn."""
import threading
import time
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from saas.core.time import utcnow
from saas.extensions import db
from saas.usage.models import UsageRecord
from saas.usage.service import forget_expired_reservations
from tests.ai_support import API_KEYS, CHAT, USAGE, messages, server_sent_events, usage_records
from tests.helpers import PASSWORD, bearer, sign_up
from tests.fake_openai import DEFAULT_REPLY, pieces_of
from tests.servers import gunicorn, run_rq_worker_burst

STREAMED = {"messages": messages("Stream me a greeting"), "stream": True}


@pytest.fixture(scope="module")
def server(database):
    with gunicorn() as base_url:
        yield base_url


def _api_key(base_url, email):
    requests.post(f"{base_url}/api/v1/auth/register", json={"email": email, "password": PASSWORD}, timeout=10)
    login = requests.post(f"{base_url}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10)
    created = requests.post(
        f"{base_url}{API_KEYS}", json={"name": "stream"}, headers=bearer(login.json()["access_token"]), timeout=10
    )
    return created.json()["key"]


def _events(response):
    """Server-sent events as (event, data) pairs, each as soon as its blank line arrives."""
    block = []
    for line in response.iter_lines(chunk_size=None, decode_unicode=True):
        if line:
            block.append(line)
        elif block:
            yield server_sent_events("\n".join(block))[0]
            block = []


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_tokens_reach_the_client_as_the_provider_sends_them(client, server, fake_openai, framing):
    """Whatever the provider's framing: chunks, or a body that ends when it closes the connection."""
    fake_openai.framing = framing
    key = _api_key(server, f"stream-{framing}@example.com")
    # The provider holds its answer after the first token until the gate opens: the client must
    # read that token before then (a buffering server would make the read below time out).
    fake_openai.stream_gate = gate = threading.Event()
    with requests.post(f"{server}{CHAT}", json=STREAMED, headers={"X-API-Key": key}, stream=True, timeout=5) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = _events(response)
        assert next(events) == ("delta", {"content": "Hello"})
        gate.set()
        rest = list(events)

    assert "".join(data["content"] for name, data in rest if name == "delta") == DEFAULT_REPLY[len("Hello"):]
    assert rest[-1] == (
        "usage",
        {"input_tokens": 4, "output_tokens": 10, "total_tokens": 14, "model": "fake-model", "finish_reason": "stop"},
    )
    [record] = usage_records()
    assert (record.status, record.input_tokens, record.output_tokens) == ("settled", 4, 10)
    assert record.request_id == response.headers["X-Request-ID"]


def test_a_client_that_leaves_mid_answer_is_charged_for_what_was_generated(client, server, fake_openai):
    key = _api_key(server, "leaver@example.com")
    fake_openai.stream_gate = gate = threading.Event()
    with requests.post(f"{server}{CHAT}", json=STREAMED, headers=bearer(key), stream=True, timeout=5) as response:
        assert next(_events(response))[0] == "delta"
    gate.set()  # the next piece the app relays finds the connection closed

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [r.status for r in usage_records()] != ["settled"]:
        time.sleep(0.1)
    [record] = usage_records()
    assert record.status == "settled"
    assert record.output_tokens >= 1 and record.input_tokens > 0


def test_the_provider_is_asked_for_a_stream_with_usage(client, tokens, fake_openai):
    response = client.post(CHAT, json=STREAMED, headers=bearer(tokens["access_token"]))
    assert response.headers["Cache-Control"] == "no-cache"
    events = server_sent_events(response.get_data(as_text=True))
    assert [name for name, _ in events] == ["delta"] * len(pieces_of(DEFAULT_REPLY)) + ["usage"]
    [sent] = fake_openai.completions()
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}


def test_a_provider_failure_before_the_first_token_is_a_json_error(client, tokens, fake_openai):
    fake_openai.mode = "down"
    response = client.post(CHAT, json=STREAMED, headers=bearer(tokens["access_token"]))
    assert response.status_code == 502
    assert response.mimetype == "application/json"
    assert usage_records() == []


def test_a_provider_failure_mid_answer_is_an_error_event_then_the_usage(client, tokens, fake_openai):
    fake_openai.mode = "midway"
    response = client.post(CHAT, json=STREAMED, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    events = server_sent_events(response.get_data(as_text=True))
    assert [name for name, _ in events] == ["delta", "delta", "error", "usage"]
    error = events[2][1]
    assert (error["code"], error["status"]) == (502, "Bad Gateway")
    [record] = usage_records()
    assert record.status == "settled"
    assert events[3][1]["output_tokens"] == record.output_tokens > 0


# --- a stream that outlives its reservation's hold ---------------------------------------------


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.services), "sqlite"])
def slow_reader(request):
    """A client on PostgreSQL with Redis (usage reported by a real worker), and one on the
    embedded default; AI_TIMEOUT half a second: a stream renews its reservation that often."""
    if request.param == "postgresql":
        return request.getfixturevalue("app_with")(AI_TIMEOUT="0.5")
    return request.getfixturevalue("embedded_with")(AI_TIMEOUT="0.5")


def _stream_past_its_hold(client):
    """A stream that has relayed its first piece and whose reservation's hold is over, as for a
    stream longer than its longest run. The app relays each next piece only as the test pulls it.
    Returns the caller's token, the response, its remaining events and the reservation's
    ``(id, user_id, org_id)``."""
    token = sign_up(client)
    response = client.post(CHAT, json=STREAMED, headers=bearer(token), buffered=False)
    assert response.status_code == 200
    events = iter(response.response)
    next(events)
    [reservation] = usage_records()
    held = (reservation.id, reservation.user_id, reservation.org_id)
    db.session.execute(
        sa.update(UsageRecord).where(UsageRecord.id == reservation.id).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    return token, response, events, held


def _assert_billed(client, fake_stripe, record):
    """With Redis, a real worker reports the usage to the Stripe meter. (Without it, a stream's
    report is left to `flask billing report-usage`: the inline runner cannot run a job after
    a response that is already on its way.)"""
    if client.application.config["REDIS_URL"]:
        assert run_rq_worker_burst().returncode == 0
        assert [event["payload"]["value"] for event in fake_stripe.meter_events] == [str(record.total_tokens)]


def test_a_stream_renews_its_reservation_as_it_goes_so_the_sweep_leaves_it(slow_reader, fake_stripe):
    client = slow_reader
    token, response, events, (reservation_id, _, _) = _stream_past_its_hold(client)
    time.sleep(0.6)  # past the renewal interval (AI_TIMEOUT): the next piece renews the hold
    next(events)
    assert forget_expired_reservations() == 0
    assert client.get(USAGE, headers=bearer(token)).get_json()["reserved"] > 0  # it still counts
    rest = b"".join(events)
    response.close()

    [record] = usage_records()
    assert (record.id, record.status) == (reservation_id, "settled")
    assert server_sent_events(rest.decode())[-1][1]["total_tokens"] == record.total_tokens > 0
    _assert_billed(client, fake_stripe, record)


def test_a_stream_whose_reservation_was_forgotten_still_counts_and_is_billed(slow_reader, fake_stripe):
    client = slow_reader
    token, response, events, (_, user_id, org_id) = _stream_past_its_hold(client)
    assert forget_expired_reservations() == 1  # as for a client too slow to read for minutes
    b"".join(events)
    response.close()

    [record] = usage_records()
    assert (record.status, record.user_id, record.org_id, record.model) == ("settled", user_id, org_id, "fake-model")
    assert client.get(USAGE, headers=bearer(token)).get_json()["used"] == record.total_tokens > 0
    _assert_billed(client, fake_stripe, record)
