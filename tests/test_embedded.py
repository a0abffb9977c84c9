"""The embedded default of `make run` (SQLite under instance/, no Redis, inline jobs), driven
through the API with the real Stripe SDK and provider client against the fakes. No server needed."""
import json

from tests.conftest import make_app
from tests.fake_stripe import make_event, sign_payload
from tests.helpers import bearer, login, register, sign_up

ME = "/api/v1/users/me"


def test_an_account_lives_its_whole_life_on_sqlite(embedded_client):
    user = register(embedded_client, full_name="Ada")
    pair = login(embedded_client)
    assert embedded_client.get(ME, headers=bearer(pair["access_token"])).get_json()["id"] == user["id"]

    renamed = embedded_client.patch(ME, json={"full_name": "Ada L."}, headers=bearer(pair["access_token"]))
    assert renamed.get_json()["full_name"] == "Ada L."

    rotated = embedded_client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 200
    replayed = embedded_client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replayed.status_code == 401
    assert embedded_client.get(ME, headers=bearer(rotated.get_json()["access_token"])).status_code == 401


def test_a_password_change_ends_other_sessions_and_revokes_keys_on_sqlite(embedded_client):
    register(embedded_client)
    changing, other = login(embedded_client)["access_token"], login(embedded_client)["access_token"]
    key = embedded_client.post("/api/v1/api-keys", json={"name": "k"}, headers=bearer(changing)).get_json()["key"]
    changed = embedded_client.patch(
        ME, json={"password": "a new long passphrase", "current_password": "correct horse battery staple"},
        headers=bearer(changing),
    )
    assert changed.status_code == 200
    assert embedded_client.get(ME, headers=bearer(changing)).status_code == 200
    assert embedded_client.get(ME, headers=bearer(other)).status_code == 401
    assert embedded_client.get(ME, headers={"X-API-Key": key}).status_code == 401


def test_signup_creates_the_stripe_customer_inline_without_redis(embedded_client, fake_stripe):
    register(embedded_client)
    assert len(fake_stripe.requests_to("POST", "/v1/customers")) == 1
    token = login(embedded_client)["access_token"]
    assert embedded_client.get(ME, headers=bearer(token)).get_json()["stripe_customer_id"] in fake_stripe.customers


def test_a_webhook_is_applied_inline_and_the_plan_follows(embedded_client, fake_stripe):
    token = sign_up(embedded_client)
    me = embedded_client.get(ME, headers=bearer(token)).get_json()
    subscription = fake_stripe.add_subscription(me["stripe_customer_id"], "price_pro")
    body = json.dumps(make_event("customer.subscription.created", subscription))
    response = embedded_client.post(
        "/api/v1/billing/webhook", data=body, content_type="application/json",
        headers={"Stripe-Signature": sign_payload(body, "whsec_test_secret_for_the_suite")},
    )
    assert response.status_code == 200
    assert embedded_client.get(ME, headers=bearer(token)).get_json()["plan"] == "pro"
    assert embedded_client.get("/api/v1/billing/pro-feature", headers=bearer(token)).status_code == 200


def test_a_chat_is_metered_on_sqlite(embedded_client, fake_openai):
    token = sign_up(embedded_client)
    chat = embedded_client.post("/api/v1/ai/chat", json={"messages": [{"role": "user", "content": "hi"}]}, headers=bearer(token))
    assert chat.status_code == 200
    usage = embedded_client.get("/api/v1/usage", headers=bearer(token)).get_json()
    assert usage["used"] == chat.get_json()["usage"]["total_tokens"] > 0


def test_without_redis_the_customer_job_runs_after_the_response_is_sent(embedded_client, fake_stripe):
    """A slow Stripe must never hold a signup: the job waits until the server has sent the
    answer and closes it (a client left unbuffered here plays the server that has not yet)."""
    response = embedded_client.post(
        "/api/v1/auth/register", json={"email": "after@example.com", "password": "engines weave patterns"},
        buffered=False,
    )
    assert response.status_code == 201
    assert fake_stripe.requests_to("POST", "/v1/customers") == []
    response.close()
    assert len(fake_stripe.requests_to("POST", "/v1/customers")) == 1


def test_a_forgotten_flask_db_upgrade_is_named_by_health_and_every_answer(tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'never-migrated.db'}", REDIS_URL="")
    client = app.test_client()
    health = client.get("/health")
    assert health.status_code == 503
    assert health.get_json()["migrations"] == "pending"
    register_attempt = client.post("/api/v1/auth/register", json={"email": "a@example.com", "password": "engines weave patterns"})
    assert register_attempt.status_code == 503
    assert "flask db upgrade" in register_attempt.get_json()["message"]


def test_a_migrated_database_keeps_the_seeds_health_answer(embedded_client):
    assert embedded_client.get("/health").get_json() == {"status": "healthy", "database": "ok", "redis": "not configured"}
