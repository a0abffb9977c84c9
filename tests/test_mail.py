"""Issue 12: verified addresses, password reset and email change, with every message through a
real SMTP server (aiosmtpd), sent after the response (no Redis) or by a real worker."""
import base64
import subprocess
import sys
import time
import types

import itsdangerous.timed
import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.mail.models import MailMessage
from saas.mail.rendering import render, template_names
from saas.users.models import User
from tests.ai_support import API_KEYS, create_api_key
from tests.conftest import ROOT, child_env
from tests.helpers import PASSWORD, bearer, login, register, tampered
from tests.mail_support import SmtpServer
from tests.servers import process_output, refusing_port, start_rq_worker, stop_process

VERIFY = "/api/v1/auth/verify-email"
RESEND = "/api/v1/auth/verify-email/resend"
RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
CHANGE = "/api/v1/users/me/email"
NEW_PASSWORD = "a fresh passphrase nobody knows"


def user_row(email):
    db.session.expire_all()
    return db.session.scalar(sa.select(User).where(User.email == email))


def in_the_past(monkeypatch, seconds):
    """Mint tokens as if it were ``seconds`` ago: itsdangerous' clock, and nothing else's."""
    real = time.time
    monkeypatch.setattr(itsdangerous.timed, "time", types.SimpleNamespace(time=lambda: real() - seconds))


# --- verification ---------------------------------------------------------------------------


def test_registration_mails_a_link_that_verifies_the_address(mailing, smtp):
    client = mailing()
    user = register(client, "ada@example.com")
    assert user["email_verified"] is False

    [message] = smtp.wait_for("ada@example.com")
    assert message.message["From"] == "saas <no-reply@localhost>"
    assert "Confirm your email address" in message.subject
    assert message.link.startswith("http://localhost:3000/verify-email?token=")
    assert message.link in message.html  # both parts carry the same link
    assert "<a href=" in message.html

    payload = message.token.split(".")[0]
    assert b"ada" not in base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))  # no address in a link

    assert client.post(VERIFY, json={"token": message.token}).status_code == 204
    assert user_row("ada@example.com").email_verified is True
    assert client.post(VERIFY, json={"token": message.token}).status_code == 204  # again: still fine
    me = client.get("/api/v1/users/me", headers=bearer(login(client, "ada@example.com")["access_token"]))
    assert me.get_json()["email_verified"] is True


@pytest.mark.parametrize("token", ["not-a-token", "", "x" * 3000])
def test_a_malformed_token_is_refused(mailing, token):
    response = mailing().post(VERIFY, json={"token": token})
    assert response.status_code in (400, 422)
    assert response.get_json()["code"] == response.status_code


def test_a_tampered_token_is_a_400(mailing, smtp):
    client = mailing()
    register(client, "tamper@example.com")
    token = smtp.wait_for("tamper@example.com")[0].token
    response = client.post(VERIFY, json={"token": tampered(token)})
    assert response.status_code == 400
    assert "token" in response.get_json()["errors"]
    assert user_row("tamper@example.com").email_verified is False


def test_an_expired_verification_link_is_a_400(mailing, smtp, monkeypatch):
    client = mailing(EMAIL_VERIFY_TOKEN_HOURS="1")
    in_the_past(monkeypatch, 2 * 3600)
    register(client, "late@example.com")
    token = smtp.wait_for("late@example.com")[0].token
    monkeypatch.undo()
    response = client.post(VERIFY, json={"token": token})
    assert response.status_code == 400
    assert "expired" in response.get_json()["message"] + str(response.get_json()["errors"])
    assert user_row("late@example.com").email_verified is False


def test_resend_sends_a_new_link_and_nothing_once_verified(mailing, smtp):
    client = mailing()
    register(client, "again@example.com")
    token = login(client, "again@example.com")["access_token"]
    response = client.post(RESEND, headers=bearer(token))
    assert response.status_code == 202
    first, second = smtp.wait_for("again@example.com", count=2)
    assert client.post(VERIFY, json={"token": second.token}).status_code == 204
    assert client.post(RESEND, headers=bearer(token)).status_code == 202
    time.sleep(0.3)
    assert len(smtp.to("again@example.com")) == 2  # verified: no third message
    assert client.post(RESEND).status_code == 401


def test_resend_is_rate_limited_per_user(mailing, smtp):
    client = mailing(RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI="memory://", RATELIMIT_EMAIL_SEND="2 per hour")
    register(client, "spam@example.com")
    token = login(client, "spam@example.com")["access_token"]
    statuses = [client.post(RESEND, headers=bearer(token)).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]


# --- password reset -------------------------------------------------------------------------


def test_a_reset_link_sets_the_password_once_and_ends_every_session_and_key(mailing, smtp):
    client = mailing()
    register(client, "reset@example.com")
    tokens = login(client, "reset@example.com")
    key = create_api_key(client, tokens["access_token"])["key"]

    response = client.post(RESET, json={"email": "reset@example.com"})
    assert response.status_code == 202
    [message] = [m for m in smtp.wait_for("reset@example.com", count=2) if "Reset" in m.subject]
    assert message.link.startswith("http://localhost:3000/reset-password?token=")

    assert client.post(CONFIRM, json={"token": message.token, "password": NEW_PASSWORD}).status_code == 204
    assert client.get("/api/v1/users/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.get("/api/v1/users/me", headers={"X-API-Key": key}).status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.post("/api/v1/auth/login", json={"email": "reset@example.com", "password": PASSWORD}).status_code == 401
    login(client, "reset@example.com", NEW_PASSWORD)
    assert user_row("reset@example.com").email_verified is True

    again = client.post(CONFIRM, json={"token": message.token, "password": "yet another passphrase"})
    assert again.status_code == 400
    login(client, "reset@example.com", NEW_PASSWORD)  # the second use changed nothing
    notices = [m for m in smtp.wait_for("reset@example.com", count=3) if "was changed" in m.subject]
    assert len(notices) == 1 and "token" not in notices[0].text


def test_an_older_reset_link_dies_with_the_one_used(mailing, smtp):
    client = mailing()
    register(client, "twice@example.com")
    client.post(RESET, json={"email": "twice@example.com"})
    client.post(RESET, json={"email": "twice@example.com"})
    older, newer = [m for m in smtp.wait_for("twice@example.com", count=3) if "Reset" in m.subject]
    assert client.post(CONFIRM, json={"token": newer.token, "password": NEW_PASSWORD}).status_code == 204
    assert client.post(CONFIRM, json={"token": older.token, "password": "yet another passphrase"}).status_code == 400


def test_an_expired_reset_link_is_a_400(mailing, smtp, monkeypatch):
    client = mailing(PASSWORD_RESET_TOKEN_MINUTES="5")
    register(client, "slow@example.com")
    in_the_past(monkeypatch, 600)
    client.post(RESET, json={"email": "slow@example.com"})
    [message] = [m for m in smtp.wait_for("slow@example.com", count=2) if "Reset" in m.subject]
    monkeypatch.undo()
    assert client.post(CONFIRM, json={"token": message.token, "password": NEW_PASSWORD}).status_code == 400


def test_a_reset_keeps_the_registration_rules_for_the_password(mailing, smtp):
    client = mailing()
    register(client, "rules@example.com")
    client.post(RESET, json={"email": "rules@example.com"})
    [message] = [m for m in smtp.wait_for("rules@example.com", count=2) if "Reset" in m.subject]
    for weak in ("short", "password", "rules@example.com"):
        response = client.post(CONFIRM, json={"token": message.token, "password": weak})
        assert response.status_code == 422, weak
    assert client.post(CONFIRM, json={"token": message.token, "password": NEW_PASSWORD}).status_code == 204


def test_asking_for_a_reset_tells_nothing_about_the_account(mailing, smtp):
    client = mailing()
    register(client, "exists@example.com")
    answers = []
    for email in ("exists@example.com", "nobody@example.com"):
        response = client.post(RESET, json={"email": email})
        headers = {k: v for k, v in response.headers if k not in ("X-Request-ID", "Date")}
        answers.append((response.status_code, response.get_data(), headers))
    assert answers[0] == answers[1]
    assert answers[0][0] == 202
    time.sleep(0.3)
    assert smtp.to("nobody@example.com") == []
    assert any("Reset" in m.subject for m in smtp.wait_for("exists@example.com", count=2))


def test_a_deactivated_account_gets_no_reset_link(mailing, smtp):
    client = mailing()
    register(client, "gone@example.com")
    smtp.wait_for("gone@example.com")  # the verification message
    user = user_row("gone@example.com")
    user.is_active = False
    db.session.commit()
    assert client.post(RESET, json={"email": "gone@example.com"}).status_code == 202
    time.sleep(0.3)
    assert [m.subject for m in smtp.to("gone@example.com") if "Reset" in m.subject] == []


def test_reset_requests_are_rate_limited_per_email_whether_or_not_it_exists(mailing):
    client = mailing(
        RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI="memory://", RATELIMIT_PASSWORD_RESET_ACCOUNT="2 per hour"
    )
    register(client, "limited@example.com")
    for email in ("limited@example.com", "ghost@example.com"):
        statuses = [client.post(RESET, json={"email": email}).status_code for _ in range(3)]
        assert statuses == [202, 202, 429], email
    assert client.post(RESET, json={"email": "other@example.com"}).status_code == 202


# --- email change ---------------------------------------------------------------------------


def test_an_email_change_waits_for_the_link_from_the_new_address(mailing, smtp):
    client = mailing()
    register(client, "old@example.com")
    token = login(client, "old@example.com")["access_token"]
    response = client.post(CHANGE, json={"email": "New@Example.com", "current_password": PASSWORD}, headers=bearer(token))
    assert response.status_code == 202

    [confirmation] = smtp.wait_for("new@example.com")
    notice = [m for m in smtp.wait_for("old@example.com", count=2) if "being changed" in m.subject]
    assert len(notice) == 1 and "new@example.com" in notice[0].text
    assert client.get("/api/v1/users/me", headers=bearer(token)).get_json()["email"] == "old@example.com"

    assert client.post(VERIFY, json={"token": confirmation.token}).status_code == 204
    me = client.get("/api/v1/users/me", headers=bearer(token)).get_json()
    assert (me["email"], me["email_verified"]) == ("new@example.com", True)
    login(client, "new@example.com")
    assert client.post(VERIFY, json={"token": confirmation.token}).status_code == 400  # works once (issue 21)


def test_the_stripe_customer_follows_an_email_change(mailing, smtp, fake_stripe):
    client = mailing()
    register(client, "payer@example.com")
    customer = user_row("payer@example.com").stripe_customer_id
    assert fake_stripe.customers[customer]["email"] == "payer@example.com"
    token = login(client, "payer@example.com")["access_token"]
    client.post(CHANGE, json={"email": "billing@example.com", "current_password": PASSWORD}, headers=bearer(token))
    [confirmation] = smtp.wait_for("billing@example.com")
    assert client.post(VERIFY, json={"token": confirmation.token}).status_code == 204
    assert fake_stripe.customers[customer]["email"] == "billing@example.com"


def test_an_email_change_needs_the_current_password_and_a_free_address(mailing, smtp):
    client = mailing()
    register(client, "mine@example.com")
    register(client, "taken@example.com")
    token = login(client, "mine@example.com")["access_token"]
    wrong = client.post(CHANGE, json={"email": "free@example.com", "current_password": "wrong guess"}, headers=bearer(token))
    assert wrong.status_code == 400
    taken = client.post(CHANGE, json={"email": "taken@example.com", "current_password": PASSWORD}, headers=bearer(token))
    assert taken.status_code == 409
    same = client.post(CHANGE, json={"email": "mine@example.com", "current_password": PASSWORD}, headers=bearer(token))
    assert same.status_code == 422
    assert client.post(CHANGE, json={"email": "free@example.com", "current_password": PASSWORD}).status_code == 401
    time.sleep(0.3)
    assert smtp.to("free@example.com") == [] and smtp.to("taken@example.com")[1:] == []
    assert client.patch("/api/v1/users/me", json={"email": "free@example.com"}, headers=bearer(token)).status_code == 422


def test_an_address_taken_before_the_link_is_used_is_a_409(mailing, smtp):
    client = mailing()
    register(client, "first@example.com")
    token = login(client, "first@example.com")["access_token"]
    client.post(CHANGE, json={"email": "wanted@example.com", "current_password": PASSWORD}, headers=bearer(token))
    [confirmation] = smtp.wait_for("wanted@example.com")
    register(client, "wanted@example.com")  # someone else registers it meanwhile
    assert client.post(VERIFY, json={"token": confirmation.token}).status_code == 409
    assert user_row("first@example.com") is not None


def test_a_change_link_dies_when_the_address_changes_another_way(mailing, smtp):
    client = mailing()
    register(client, "start@example.com")
    token = login(client, "start@example.com")["access_token"]
    client.post(CHANGE, json={"email": "one@example.com", "current_password": PASSWORD}, headers=bearer(token))
    client.post(CHANGE, json={"email": "two@example.com", "current_password": PASSWORD}, headers=bearer(token))
    [one] = smtp.wait_for("one@example.com")
    [two] = smtp.wait_for("two@example.com")
    assert client.post(VERIFY, json={"token": two.token}).status_code == 204
    assert client.post(VERIFY, json={"token": one.token}).status_code == 400
    assert user_row("two@example.com") is not None


# --- the verified-email gate ----------------------------------------------------------------


def test_require_verified_email_closes_billing_keys_and_ai_until_verified(mailing, smtp, fake_openai):
    client = mailing(REQUIRE_VERIFIED_EMAIL="true")
    register(client, "gate@example.com")
    token = login(client, "gate@example.com")["access_token"]
    assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 200
    assert client.patch("/api/v1/users/me", json={"full_name": "Gate"}, headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/usage", headers=bearer(token)).status_code == 200
    refused = [
        client.post(API_KEYS, json={"name": "k"}, headers=bearer(token)),
        client.get(API_KEYS, headers=bearer(token)),
        client.post("/api/v1/billing/create-checkout-session", json={"plan": "pro"}, headers=bearer(token)),
        client.get("/api/v1/billing/subscription", headers=bearer(token)),
        client.post("/api/v1/ai/chat", json={"messages": [{"role": "user", "content": "hi"}]}, headers=bearer(token)),
    ]
    for response in refused:
        assert response.status_code == 403, response.get_json()
        assert response.get_json()["errors"] == {"reason": ["email_not_verified"]}
        assert "not verified" in response.get_json()["message"]
    assert client.post(RESEND, headers=bearer(token)).status_code == 202

    [first, *_] = smtp.wait_for("gate@example.com", count=2)
    assert client.post(VERIFY, json={"token": first.token}).status_code == 204
    assert client.post(API_KEYS, json={"name": "k"}, headers=bearer(token)).status_code == 201


def test_without_the_setting_unverified_users_use_everything(mailing):
    client = mailing()
    register(client, "open@example.com")
    token = login(client, "open@example.com")["access_token"]
    assert client.post(API_KEYS, json={"name": "k"}, headers=bearer(token)).status_code == 201


# --- sending --------------------------------------------------------------------------------


def test_every_message_renders_both_parts(inline_app):
    values = {"link": "http://localhost:3000/x?token=abc", "hours": 48, "minutes": 60, "new_email": "n@example.com",
              "inviter": "Ada", "org_name": "Acme", "role": "admin", "days": 7, "provider": "GitHub",
              "url": "https://hooks.example.com/in", "reason": "failing", "last_error": "HTTP 500"}
    with inline_app.app_context():
        for name in template_names():
            rendered = render(name, values)
            assert rendered.subject and "\n" not in rendered.subject, name
            assert rendered.text.strip() and "<html" in rendered.html, name
            assert "{{" not in rendered.text + rendered.html, name


def test_flask_mail_send_test_prints_what_the_server_answered(database, smtp):
    smtp.messages.clear()
    env = child_env(REDIS_URL="", **smtp.settings)
    sent = subprocess.run([sys.executable, "-m", "flask", "mail", "send-test", "ops@example.com"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    assert "250 2.0.0 Ok: queued as TEST" in sent.stdout
    assert "Test message" in smtp.wait_for("ops@example.com")[0].subject

    with refusing_port() as port:
        down = child_env(REDIS_URL="", **{**smtp.settings, "SMTP_PORT": str(port)})
        failed = subprocess.run([sys.executable, "-m", "flask", "mail", "send-test", "ops@example.com"], cwd=ROOT,
                                env=down, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "not sent" in failed.stderr and "ops@example.com" not in failed.stderr


def test_starttls_required_but_not_offered_sends_nothing(database, smtp):
    smtp.messages.clear()
    env = child_env(REDIS_URL="", **{**smtp.settings, "SMTP_STARTTLS": "true"})
    failed = subprocess.run([sys.executable, "-m", "flask", "mail", "send-test", "tls@example.com"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "does not offer STARTTLS" in failed.stderr
    assert smtp.to("tls@example.com") == []


def test_smtp_down_leaves_the_job_retrying_and_nothing_is_lost(client, redis_client):
    """A real worker; the SMTP server is away when the message is first tried, back later."""
    server = SmtpServer()  # not started: its port refuses connections
    worker = start_rq_worker(**server.settings)
    try:
        register(client, "patient@example.com")
        deadline = time.monotonic() + 30
        message = None
        while time.monotonic() < deadline:
            db.session.expire_all()
            message = db.session.scalar(sa.select(MailMessage))
            if message is not None and message.attempts >= 1:
                break
            time.sleep(0.2)
        assert message is not None and message.attempts >= 1 and message.status == "pending", process_output(worker)
        assert "patient@example.com" not in (message.last_error or "")
        server.start()  # back: the retry (10 s later) gets through
        [received] = server.wait_for("patient@example.com", timeout=40)
        assert "Confirm your email address" in received.subject
        deadline = time.monotonic() + 10  # the worker records it just after the server's answer
        while db.session.get(MailMessage, message.id).status != "sent" and time.monotonic() < deadline:
            time.sleep(0.1)
            db.session.expire_all()
        assert db.session.get(MailMessage, message.id).status == "sent"
    finally:
        stop_process(worker)
        server.close()
    output = process_output(worker)
    assert "patient@example.com" not in output  # no address in the worker's log...
    assert received.token not in output  # ...and no token


def test_mail_queued_while_redis_is_down_is_sent_by_the_sweep(app_with, redis_url, smtp):
    smtp.messages.clear()
    offline = app_with(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://")
    register(offline, "queued@example.com")  # stored, but its job could not be queued
    worker = start_rq_worker(SWEEP_INTERVAL_SECONDS="5", **smtp.settings)
    try:
        [received] = smtp.wait_for("queued@example.com", timeout=60)
    finally:
        stop_process(worker)
    assert "Confirm your email address" in received.subject
