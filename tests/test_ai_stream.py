"""Streamed chat: Server-Sent Events relayed token by token, read by a real client via gunicorn."""
import threading
import time

import pytest
import requests

from tests.ai_support import API_KEYS, CHAT, messages, server_sent_events, usage_records
from tests.helpers import PASSWORD, bearer
from tests.fake_openai import DEFAULT_REPLY, pieces_of
from tests.servers import gunicorn

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
