"""POST /api/v1/ai/chat against the fake OpenAI-compatible provider: answers, usage, failures."""
from tests.ai_support import (
    CHAT,
    USAGE,
    create_api_key,
    messages,
    usage_records,
)
from tests.helpers import bearer, sign_up
from tests.fake_openai import API_KEY as PROVIDER_KEY


def test_chat_returns_the_completion_and_its_token_usage(client, tokens, fake_openai):
    response = client.post(CHAT, json={"messages": messages("Say hello to me")}, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    body = response.get_json()
    assert body["content"] == fake_openai.reply
    assert body["model"] == "fake-model"
    assert body["finish_reason"] == "stop"
    assert body["id"].startswith("chatcmpl-")
    assert body["usage"] == {"input_tokens": 4, "output_tokens": 10, "total_tokens": 14}

    [sent] = fake_openai.completions()
    assert sent.headers["Authorization"] == f"Bearer {PROVIDER_KEY}"
    assert sent.body == {"model": "fake-model", "messages": messages("Say hello to me"), "max_tokens": 100}


def test_every_call_is_recorded_with_user_tokens_model_and_request_id(client, tokens, user):
    response = client.post(
        CHAT, json={"messages": messages(), "max_tokens": 3}, headers=bearer(tokens["access_token"])
    )
    assert response.get_json()["finish_reason"] == "length"
    [record] = usage_records()
    assert record.user_id == user["id"]
    assert (record.input_tokens, record.output_tokens, record.model) == (2, 3, "fake-model")
    assert record.status == "settled" and record.settled_at >= record.created_at
    assert record.request_id == response.headers["X-Request-ID"]


def test_an_api_key_can_chat(client, tokens):
    key = create_api_key(client, tokens["access_token"])["key"]
    for headers in (bearer(key), {"X-API-Key": key}):
        assert client.post(CHAT, json={"messages": messages()}, headers=headers).status_code == 200


def test_chat_needs_a_token_or_a_key(client, fake_openai):
    for body in ({"messages": messages()}, {"nonsense": True}):
        response = client.post(CHAT, json=body)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert fake_openai.completions() == []


def test_only_the_configured_models_may_be_asked_for(app_with, fake_openai):
    client = app_with(AI_ALLOWED_MODELS="fake-large")
    token = sign_up(client)
    refused = client.post(CHAT, json={"messages": messages(), "model": "gpt-4-32k"}, headers=bearer(token))
    assert refused.status_code == 422
    assert "fake-model, fake-large" in refused.get_json()["errors"]["json"]["model"][0]

    chosen = client.post(CHAT, json={"messages": messages(), "model": "fake-large"}, headers=bearer(token))
    assert chosen.status_code == 200 and chosen.get_json()["model"] == "fake-large"
    assert [request.body["model"] for request in fake_openai.completions()] == ["fake-large"]


def test_bad_bodies_are_422_before_any_model_call(client, tokens, fake_openai):
    for body in (
        {},
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": [{"role": "user"}]},
        {"messages": messages(), "max_tokens": 0},
        {"messages": messages(), "max_tokens": 101},
        {"messages": messages(), "temperature": 2},
    ):
        response = client.post(CHAT, json=body, headers=bearer(tokens["access_token"]))
        assert response.status_code == 422, body
        assert response.get_json()["code"] == 422
    assert fake_openai.completions() == []


def test_a_provider_error_is_a_json_502_and_costs_no_quota(client, tokens, fake_openai):
    fake_openai.mode = "down"
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(tokens["access_token"]))
    assert response.status_code == 502
    assert response.get_json()["status"] == "Bad Gateway"
    assert "(500)" in response.get_json()["message"]
    assert usage_records() == []
    assert client.get(USAGE, headers=bearer(tokens["access_token"])).get_json()["used"] == 0


def test_the_providers_reason_for_refusing_a_request_is_passed_on(client, tokens, fake_openai):
    fake_openai.models = {"another-model"}
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(tokens["access_token"]))
    assert response.status_code == 502
    assert "The model `fake-model` does not exist" in response.get_json()["message"]


def test_a_provider_that_does_not_answer_in_time_is_a_json_504(app_with, fake_openai):
    client = app_with(AI_TIMEOUT="0.5")
    fake_openai.mode, fake_openai.delay = "slow", 3
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(sign_up(client)))
    assert response.status_code == 504
    assert response.get_json()["status"] == "Gateway Timeout"
    assert usage_records() == []


def test_an_unreachable_provider_is_a_json_502(app_with):
    client = app_with(AI_API_BASE="http://127.0.0.1:1/v1")
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(sign_up(client)))
    assert response.status_code == 502
    assert "could not be reached" in response.get_json()["message"]


def test_without_ai_api_key_the_providers_refusal_names_the_setting(app_with, fake_openai):
    client = app_with(AI_API_KEY="")
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(sign_up(client)))
    assert response.status_code == 502
    assert "AI_API_KEY is not set" in response.get_json()["message"]


def test_a_wrong_ai_api_key_is_named_too(app_with, fake_openai):
    client = app_with(AI_API_KEY="sk-not-the-providers")
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(sign_up(client)))
    assert response.status_code == 502
    assert "check AI_API_KEY" in response.get_json()["message"]


def test_a_dropped_connection_is_a_json_502(client, tokens, fake_openai):
    fake_openai.mode = "unavailable"
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(tokens["access_token"]))
    assert response.status_code == 502


def test_an_answer_that_cannot_be_read_is_a_json_502(client, tokens, fake_openai):
    fake_openai.mode = "malformed"
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(tokens["access_token"]))
    assert response.status_code == 502
    assert "could not be read" in response.get_json()["message"]
    assert usage_records() == []


def test_failed_calls_are_retried_as_configured(app_with, fake_openai):
    client = app_with(AI_MAX_RETRIES="2")
    fake_openai.mode = "down"
    response = client.post(CHAT, json={"messages": messages()}, headers=bearer(sign_up(client)))
    assert response.status_code == 502
    assert len(fake_openai.completions()) == 3


def test_openapi_documents_chat_with_either_credential(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/api/v1/ai/chat"]["post"]
    assert operation["security"] == [{"BearerAuth": []}, {"OAuth2PasswordBearer": []}, {"ApiKeyAuth": []}]
    assert {"200", "401", "422", "429", "502", "504"} <= set(operation["responses"])
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
