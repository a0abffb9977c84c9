"""Issue 21, items 1, 3 and 11: every link mailed for an account (verifying or changing its
address, resetting its password) is bound to the account's security stamp as it was when the
link was asked for. A password change or reset, an address change, logout-all or deactivation
voids every pending link: 400 in the error envelope, nothing changed. Email-change and reset
links work once, and an email-change link dies when a newer change is asked for.

Over HTTP, with every message through a real SMTP server; on PostgreSQL, and the takeover on
the embedded SQLite default too."""
import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.users.models import User
from tests.helpers import PASSWORD, bearer, login, register
from tests.servers import run_rq_worker_burst

VERIFY = "/api/v1/auth/verify-email"
RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
CHANGE = "/api/v1/users/me/email"
ME = "/api/v1/users/me"
NEW_PASSWORD = "a fresh passphrase nobody knows"


def address_of(user_id):
    db.session.expire_all()
    return db.session.get(User, user_id).email


def link_to(smtp, address, subject_part, count=1):
    """The token of the latest message to ``address`` whose subject has ``subject_part``."""
    found = [message for message in smtp.wait_for(address, count=count) if subject_part in message.subject]
    assert found, [message.subject for message in smtp.to(address)]
    return found[-1].token


def assert_refused_link(response):
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["code"] == 400 and body["errors"]["token"]


def change_password(client, token, new=NEW_PASSWORD, current=PASSWORD):
    response = client.patch(ME, json={"password": new, "current_password": current}, headers=bearer(token))
    assert response.status_code == 200, response.get_json()


# --- item 1: the takeover -------------------------------------------------------------------


def _a_pending_email_change_dies_with_a_password_change(client, smtp):
    """The attacker knows the password and asks for the address to move to theirs; the owner,
    warned by the notice, changes the password. The link mailed to the attacker must be dead."""
    smtp.messages.clear()
    owner = register(client, "victim@example.com")
    attacker_session = login(client, "victim@example.com")["access_token"]
    asked = client.post(CHANGE, json={"email": "evil@example.net", "current_password": PASSWORD},
                        headers=bearer(attacker_session))
    assert asked.status_code == 202
    evil_link = link_to(smtp, "evil@example.net", "")
    assert [m for m in smtp.wait_for("victim@example.com", count=2) if "being changed" in m.subject]

    change_password(client, login(client, "victim@example.com")["access_token"])

    assert client.get(ME, headers=bearer(attacker_session)).status_code == 401
    assert_refused_link(client.post(VERIFY, json={"token": evil_link}))
    assert address_of(owner["id"]) == "victim@example.com"
    # And so no reset can be sent to the attacker's address.
    assert client.post(RESET, json={"email": "evil@example.net"}).status_code == 202
    assert len(smtp.to("evil@example.net")) == 1
    login(client, "victim@example.com", NEW_PASSWORD)


def test_a_pending_email_change_dies_with_the_password_change_its_notice_asks_for(mailing, smtp):
    _a_pending_email_change_dies_with_a_password_change(mailing(), smtp)


def test_the_same_on_the_embedded_sqlite_default(embedded_with, smtp):
    _a_pending_email_change_dies_with_a_password_change(embedded_with(**smtp.settings), smtp)


# --- item 1: every security change voids every pending link ---------------------------------


def _reset_password(client, smtp, email, token):
    before = len(smtp.to(email))
    client.post(RESET, json={"email": email})
    reset_token = link_to(smtp, email, "Reset", count=before + 1)
    assert client.post(CONFIRM, json={"token": reset_token, "password": NEW_PASSWORD}).status_code == 204


def _change_address(client, smtp, email, token):
    client.post(CHANGE, json={"email": "elsewhere@example.com", "current_password": PASSWORD}, headers=bearer(token))
    # The newer change kills the pending one by itself; it is used, so the address really changes.
    assert client.post(VERIFY, json={"token": link_to(smtp, "elsewhere@example.com", "")}).status_code == 204


def _log_out_everywhere(client, smtp, email, token):
    assert client.post("/api/v1/auth/logout-all", headers=bearer(token)).status_code == 204


def _deactivate_and_reactivate(client, smtp, email, token):
    """By an operator, through the admin API."""
    register(client, "operator@example.com")
    runner = client.application.test_cli_runner()
    assert runner.invoke(args=["users", "make-superuser", "operator@example.com"]).exit_code == 0
    operator = login(client, "operator@example.com")["access_token"]
    user_id = db.session.scalar(sa.select(User.id).where(User.email == email))
    for active in (False, True):
        response = client.patch(f"/api/v1/admin/users/{user_id}", json={"is_active": active}, headers=bearer(operator))
        assert response.status_code == 200, response.get_json()


SECURITY_CHANGES = {
    "password change": lambda client, smtp, email, token: change_password(client, token),
    "password reset": _reset_password,
    "address change": _change_address,
    "logout-all": _log_out_everywhere,
    "deactivation": _deactivate_and_reactivate,
}


@pytest.mark.parametrize("change", SECURITY_CHANGES)
def test_a_security_change_voids_every_pending_link(mailing, smtp, change):
    client = mailing()
    email = "stamped@example.com"
    user = register(client, email)
    token = login(client, email)["access_token"]
    verification = link_to(smtp, email, "Confirm")
    client.post(CHANGE, json={"email": "pending@example.com", "current_password": PASSWORD}, headers=bearer(token))
    email_change = link_to(smtp, "pending@example.com", "")
    client.post(RESET, json={"email": email})
    reset = link_to(smtp, email, "Reset", count=3)

    SECURITY_CHANGES[change](client, smtp, email, token)

    before = address_of(user["id"])
    assert_refused_link(client.post(VERIFY, json={"token": verification}))
    assert_refused_link(client.post(VERIFY, json={"token": email_change}))
    assert_refused_link(client.post(CONFIRM, json={"token": reset, "password": "a password set by the link"}))
    db.session.expire_all()
    row = db.session.get(User, user["id"])
    assert row.email == before != "pending@example.com"
    assert row.email_verified is (change in ("password reset", "address change"))  # set by the change itself
    assert client.post("/api/v1/auth/login", json={"email": before, "password": "a password set by the link"}).status_code == 401


def test_a_link_minted_after_the_change_is_not_sent(app_with, redis_url, smtp):
    """The messages wait in Redis when the password changes; the worker that sends them later
    must not mint a link for the old state: they are cancelled, and nothing reaches the address."""
    smtp.messages.clear()
    client = app_with(**smtp.settings)  # Redis: mail waits for a worker
    register(client, "queued@example.com")
    token = login(client, "queued@example.com")["access_token"]
    client.post(CHANGE, json={"email": "thief@example.net", "current_password": PASSWORD}, headers=bearer(token))
    change_password(client, token)

    run_rq_worker_burst(**smtp.settings)

    assert smtp.to("thief@example.net") == []
    subjects = [message.subject for message in smtp.to("queued@example.com")]
    assert not [subject for subject in subjects if "Confirm" in subject]  # the verification link too
    assert [subject for subject in subjects if "being changed" in subject]  # the notice has no link: it goes


# --- item 3: single use and the newest change only -------------------------------------------


def test_an_email_change_link_cannot_be_replayed_after_a_change_back(mailing, smtp):
    client = mailing()
    user = register(client, "a@example.com")
    token = login(client, "a@example.com")["access_token"]
    client.post(CHANGE, json={"email": "x@example.com", "current_password": PASSWORD}, headers=bearer(token))
    to_x = link_to(smtp, "x@example.com", "")
    assert client.post(VERIFY, json={"token": to_x}).status_code == 204
    token = login(client, "x@example.com")["access_token"]
    before = len(smtp.to("a@example.com"))
    client.post(CHANGE, json={"email": "a@example.com", "current_password": PASSWORD}, headers=bearer(token))
    back_to_a = link_to(smtp, "a@example.com", "", count=before + 1)
    assert client.post(VERIFY, json={"token": back_to_a}).status_code == 204

    assert_refused_link(client.post(VERIFY, json={"token": to_x}))
    assert_refused_link(client.post(VERIFY, json={"token": back_to_a}))  # used: single-use too
    assert address_of(user["id"]) == "a@example.com"


def test_an_email_change_link_dies_when_a_newer_change_is_asked_for(mailing, smtp):
    client = mailing()
    user = register(client, "mover@example.com")
    token = login(client, "mover@example.com")["access_token"]
    client.post(CHANGE, json={"email": "first@example.com", "current_password": PASSWORD}, headers=bearer(token))
    first = link_to(smtp, "first@example.com", "")
    client.post(CHANGE, json={"email": "second@example.com", "current_password": PASSWORD}, headers=bearer(token))
    second = link_to(smtp, "second@example.com", "")

    assert_refused_link(client.post(VERIFY, json={"token": first}))
    assert address_of(user["id"]) == "mover@example.com"
    assert client.post(VERIFY, json={"token": second}).status_code == 204
    assert address_of(user["id"]) == "second@example.com"


def test_a_verification_link_opened_again_stays_a_harmless_204(mailing, smtp):
    client = mailing()
    register(client, "twice@example.com")
    verification = link_to(smtp, "twice@example.com", "Confirm")
    assert client.post(VERIFY, json={"token": verification}).status_code == 204
    assert client.post(VERIFY, json={"token": verification}).status_code == 204


# --- item 11: a reset link does not survive an address change --------------------------------


def test_a_password_reset_link_dies_with_an_email_change(mailing, smtp):
    client = mailing()
    register(client, "before@example.com")
    token = login(client, "before@example.com")["access_token"]
    client.post(RESET, json={"email": "before@example.com"})
    reset = link_to(smtp, "before@example.com", "Reset", count=2)
    client.post(CHANGE, json={"email": "after@example.com", "current_password": PASSWORD}, headers=bearer(token))
    assert client.post(VERIFY, json={"token": link_to(smtp, "after@example.com", "")}).status_code == 204

    assert_refused_link(client.post(CONFIRM, json={"token": reset, "password": NEW_PASSWORD}))
    login(client, "after@example.com", PASSWORD)


def test_each_reset_link_works_once(mailing, smtp):
    client = mailing()
    register(client, "once@example.com")
    client.post(RESET, json={"email": "once@example.com"})
    reset = link_to(smtp, "once@example.com", "Reset", count=2)
    assert client.post(CONFIRM, json={"token": reset, "password": NEW_PASSWORD}).status_code == 204
    assert_refused_link(client.post(CONFIRM, json={"token": reset, "password": "yet another passphrase"}))
    login(client, "once@example.com", NEW_PASSWORD)
