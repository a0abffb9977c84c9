"""The operators' API and seeding the first superuser. Each rule is tried from the side that
should be refused: other users, a superuser's API key, a superuser locking themselves out."""
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from saas.auth.models import AuthSession
from saas.billing.models import Subscription
from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs.models import AuditEvent
from saas.usage.models import SETTLED, UsageRecord
from saas.users.models import User
from saas.web.api import SESSION
from tests.conftest import ROOT, child_env, make_app
from tests.helpers import PASSWORD, at_once, bearer, login, personal_org_id, register

ADMIN = "/api/v1/admin"
ROOT_EMAIL = "root@example.com"
OPERATOR_ADDRESS = "203.0.113.7"


# --- arrangements ---------------------------------------------------------------------------


def cli(client, *args, input=None):
    return client.application.test_cli_runner().invoke(args=list(args), input=input)


def superuser(client, email=ROOT_EMAIL):
    """Register ``email`` and make it a superuser with the CLI; their access token."""
    user = register(client, email)
    assert cli(client, "users", "make-superuser", email).exit_code == 0
    return user, login(client, email)["access_token"]


def person(client, email, **extra):
    """Register ``email``; the user as the API shows it and an access token."""
    user = register(client, email, **extra)
    return user, login(client, email)["access_token"]


def api_key(client, token, name="script"):
    response = client.post("/api/v1/api-keys", json={"name": name}, headers=bearer(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["key"]


def as_operator(client, method, path, token, **kwargs):
    """A call from the operator's address, which the audit log records."""
    return client.open(path, method=method, headers=bearer(token), environ_base={"REMOTE_ADDR": OPERATOR_ADDRESS},
                       **kwargs)


def admin_events():
    return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.org_id.is_(None)).order_by(AuditEvent.id)).all()


def user_row(user_id):
    db.session.expire_all()
    return db.session.get(User, user_id)


def admin_operations(app):
    """``(method, path with ids filled in, view)`` of every admin endpoint the app serves."""
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(ADMIN):
            path = re.sub(r"<(?:\w+:)?\w+>", "1", rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, path, app.view_functions[rule.endpoint]


# --- who may call -----------------------------------------------------------------------------


def test_every_admin_endpoint_takes_only_a_superusers_login_session(client):
    operations = list(admin_operations(client.application))
    assert len(operations) == 8
    for method, path, view in operations:
        assert view.auth_schemes == (SESSION,) and view.requires_superuser, f"{method} {path}"


def test_other_users_get_403_and_anonymous_callers_401_on_every_admin_endpoint(client):
    _, token = person(client, "someone@example.com")
    for method, path, _ in admin_operations(client.application):
        body = {"json": {"is_active": False}} if method == "PATCH" else {}
        refused = client.open(path, method=method, headers=bearer(token), **body)
        assert refused.status_code == 403, f"{method} {path}"
        assert refused.get_json()["errors"] == {"reason": ["superuser_required"]}
        assert client.open(path, method=method, **body).status_code == 401, f"{method} {path}"
    assert user_row(1).is_active  # the PATCH of user 1 (themselves) never ran


def test_a_superusers_api_key_is_refused_on_every_admin_endpoint(client):
    _, token = superuser(client)
    key = api_key(client, token)
    assert client.get("/api/v1/users/me", headers={"X-API-Key": key}).status_code == 200  # a valid key
    for method, path, _ in admin_operations(client.application):
        for headers in ({"X-API-Key": key}, bearer(key)):
            response = client.open(path, method=method, headers=headers)
            assert response.status_code == 401, f"{method} {path}"
            assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_demoted_superuser_loses_the_admin_api_at_once(client):
    _, root = superuser(client)
    deputy, deputy_token = person(client, "deputy@example.com")
    assert client.patch(f"{ADMIN}/users/{deputy['id']}", json={"is_superuser": True}, headers=bearer(root)).status_code == 200
    assert client.get(f"{ADMIN}/stats", headers=bearer(deputy_token)).status_code == 200  # the same token
    assert client.patch(f"{ADMIN}/users/{deputy['id']}", json={"is_superuser": False}, headers=bearer(root)).status_code == 200
    assert client.get(f"{ADMIN}/stats", headers=bearer(deputy_token)).status_code == 403


# --- changing accounts ------------------------------------------------------------------------


@pytest.mark.parametrize("change", [{"is_active": False}, {"is_superuser": False}, {"is_active": False, "email_verified": True}])
def test_a_superuser_cannot_deactivate_or_demote_themselves(client, change):
    root, token = superuser(client)
    response = client.patch(f"{ADMIN}/users/{root['id']}", json=change, headers=bearer(token))
    assert response.status_code == 409
    row = user_row(root["id"])
    assert (row.is_active, row.is_superuser, row.email_verified) == (True, True, False)  # nothing changed
    assert admin_events() == []
    assert client.get(f"{ADMIN}/stats", headers=bearer(token)).status_code == 200


def test_a_superuser_may_change_what_does_not_lock_them_out(client):
    root, token = superuser(client)
    response = client.patch(f"{ADMIN}/users/{root['id']}", json={"email_verified": True, "is_active": True}, headers=bearer(token))
    assert response.status_code == 200
    assert response.get_json()["email_verified"] is True


def test_deactivating_a_user_ends_their_sessions_and_api_keys_at_once(client):
    _, root = superuser(client)
    target, token = person(client, "customer@example.com")
    second_token = login(client, "customer@example.com")["access_token"]
    key = api_key(client, token)

    response = as_operator(client, "PATCH", f"{ADMIN}/users/{target['id']}", root, json={"is_active": False})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["is_active"], body["open_sessions"], body["api_keys"]) == (False, 0, 0)
    for credentials in (bearer(token), bearer(second_token), {"X-API-Key": key}):
        assert client.get("/api/v1/users/me", headers=credentials).status_code == 401
    assert client.post("/api/v1/auth/login", json={"email": "customer@example.com", "password": PASSWORD}).status_code == 401

    [event] = admin_events()
    assert (event.action, event.target, event.actor_user_id, event.ip_address) == (
        "admin.user_updated", f"user:{target['id']}", 1, OPERATOR_ADDRESS,
    )
    assert event.details == {"email": "customer@example.com", "is_active": {"from": True, "to": False}}

    # Reactivated: the owner can log in again; the revoked key stays revoked.
    assert client.patch(f"{ADMIN}/users/{target['id']}", json={"is_active": True}, headers=bearer(root)).status_code == 200
    assert client.get("/api/v1/users/me", headers=bearer(login(client, "customer@example.com")["access_token"])).status_code == 200
    assert client.get("/api/v1/users/me", headers={"X-API-Key": key}).status_code == 401


def test_granting_superuser_and_verifying_an_address_are_audited_and_a_no_op_is_not(client):
    _, root = superuser(client)
    target, _ = person(client, "helper@example.com")
    path = f"{ADMIN}/users/{target['id']}"
    changed = client.patch(path, json={"is_superuser": True, "email_verified": True}, headers=bearer(root)).get_json()
    assert (changed["is_superuser"], changed["email_verified"]) == (True, True)
    assert client.patch(path, json={"is_superuser": True}, headers=bearer(root)).status_code == 200  # already
    [event] = admin_events()
    assert event.details == {
        "email": "helper@example.com",
        "is_superuser": {"from": False, "to": True},
        "email_verified": {"from": False, "to": True},
    }


@pytest.mark.parametrize("body", [{"email": "x@example.com"}, {"is_active": "maybe"}, {"hashed_password": "x"}])
def test_only_the_three_flags_can_be_changed(client, body):
    _, root = superuser(client)
    target, _ = person(client, "customer@example.com")
    assert client.patch(f"{ADMIN}/users/{target['id']}", json=body, headers=bearer(root)).status_code == 422


def test_two_superusers_demoting_each_other_at_once_leave_one_of_them_superuser(client):
    first, first_token = superuser(client)
    second, second_token = superuser(client, "second@example.com")
    calls = [(first_token, second["id"]), (second_token, first["id"])]

    def demote(each_client):
        token, target = calls.pop()
        return each_client.patch(f"{ADMIN}/users/{target}", json={"is_superuser": False}, headers=bearer(token)).status_code

    assert sorted(at_once(client.application, 2, demote)) == [200, 403]
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User).where(User.is_superuser)) == 1


def test_logout_all_ends_every_session_of_the_user_but_not_their_keys(client):
    _, root = superuser(client)
    target, token = person(client, "customer@example.com")
    other_token = login(client, "customer@example.com")["access_token"]
    key = api_key(client, token)
    assert client.get(f"{ADMIN}/users/{target['id']}", headers=bearer(root)).get_json()["open_sessions"] == 2

    assert as_operator(client, "POST", f"{ADMIN}/users/{target['id']}/logout-all", root).status_code == 204
    assert client.get("/api/v1/users/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/users/me", headers=bearer(other_token)).status_code == 401
    assert client.get("/api/v1/users/me", headers={"X-API-Key": key}).status_code == 200
    assert client.get(f"{ADMIN}/users/{target['id']}", headers=bearer(root)).get_json()["open_sessions"] == 0
    assert client.get(f"{ADMIN}/stats", headers=bearer(root)).status_code == 200  # the operator's own stays
    [event] = admin_events()
    assert (event.action, event.actor_user_id, event.ip_address, event.details["sessions_ended"]) == (
        "admin.user_logged_out", 1, OPERATOR_ADDRESS, 2,
    )


@pytest.mark.parametrize("method, path", [
    ("GET", "/users/999"), ("PATCH", "/users/999"), ("POST", "/users/999/logout-all"), ("GET", "/orgs/999"),
])
def test_a_missing_user_or_organization_is_a_404(client, method, path):
    _, root = superuser(client)
    body = {"json": {"is_active": False}} if method == "PATCH" else {}
    assert client.open(ADMIN + path, method=method, headers=bearer(root), **body).status_code == 404
    assert admin_events() == []


# --- finding and reading ----------------------------------------------------------------------


def test_users_are_found_by_email_or_name_in_any_case_newest_first_in_pages(client):
    _, root = superuser(client)
    for number in range(12):
        register(client, f"customer{number}@example.com", full_name=f"Customer Number{number}")
    register(client, "ada@lovelace.example", full_name="Ada LOVELACE")

    first = client.get(f"{ADMIN}/users", query_string={"page_size": 5}, headers=bearer(root))
    assert first.status_code == 200
    assert json.loads(first.headers["X-Pagination"]) == {
        "total": 14, "total_pages": 3, "first_page": 1, "last_page": 3, "page": 1, "next_page": 2,
    }
    assert [user["email"] for user in first.get_json()][:2] == ["ada@lovelace.example", "customer11@example.com"]
    last = client.get(f"{ADMIN}/users", query_string={"page_size": 5, "page": 3}, headers=bearer(root)).get_json()
    assert [user["email"] for user in last][-1] == ROOT_EMAIL

    def found(q):
        response = client.get(f"{ADMIN}/users", query_string={"q": q, "page_size": 100}, headers=bearer(root))
        return sorted(user["email"] for user in response.get_json())

    assert found("lovelace") == ["ada@lovelace.example"]  # the name, in another case, and the email
    assert found("NUMBER1") == ["customer10@example.com", "customer11@example.com", "customer1@example.com"]
    assert found("%") == [] and found("_") == []  # wildcards are plain characters
    assert len(found("")) == 14
    assert client.get(f"{ADMIN}/users", query_string={"page_size": 101}, headers=bearer(root)).status_code == 422
    beyond = client.get(f"{ADMIN}/users", query_string={"page": 10**20}, headers=bearer(root))  # past any bigint
    assert (beyond.status_code, beyond.get_json(), json.loads(beyond.headers["X-Pagination"])["total"]) == (200, [], 14)


def test_a_user_is_shown_with_organizations_sessions_subscription_and_usage(client):
    _, root = superuser(client)
    target, token = person(client, "customer@example.com", full_name="Cus Tomer")
    login(client, "customer@example.com")
    expired = login(client, "customer@example.com")["access_token"]
    client.post("/api/v1/auth/logout", headers=bearer(expired))
    team = client.post("/api/v1/orgs", json={"name": "Acme"}, headers=bearer(token)).get_json()
    personal = personal_org_id(target)
    db.session.add(Subscription(stripe_subscription_id="sub_1", org_id=personal, stripe_customer_id="cus_1",
                                status="active", price_id="price_pro", plan="pro"))
    db.session.add_all([
        UsageRecord(user_id=target["id"], org_id=personal, model="m", status=SETTLED, reserved_tokens=50,
                    input_tokens=30, output_tokens=12),
        UsageRecord(user_id=target["id"], org_id=team["id"], model="m", status=SETTLED, reserved_tokens=50,
                    input_tokens=500, output_tokens=500),  # the team's, not theirs
    ])
    db.session.commit()

    body = client.get(f"{ADMIN}/users/{target['id']}", headers=bearer(root)).get_json()
    assert (body["email"], body["full_name"], body["is_superuser"]) == ("customer@example.com", "Cus Tomer", False)
    assert [(org["id"], org["role"], org["personal"]) for org in body["organizations"]] == [
        (personal, "owner", True), (team["id"], "owner", False),
    ]
    assert body["open_sessions"] == 2  # three logins, one logged out
    assert body["api_keys"] == 0
    assert (body["subscription"]["plan"], body["subscription"]["status"], body["subscription"]["has_access"]) == (
        "pro", "active", True,
    )
    assert (body["usage"]["used"], body["usage"]["plan"]) == (42, "free")  # plan: written by the webhook, not here
    assert "hashed_password" not in body


def test_organizations_are_found_by_name_or_slug_and_shown_with_members_and_billing(client):
    _, root = superuser(client)
    owner, token = person(client, "owner@example.com")
    acme = client.post("/api/v1/orgs", json={"name": "Acme Rockets"}, headers=bearer(token)).get_json()
    client.post("/api/v1/orgs", json={"name": "Globex"}, headers=bearer(token))

    def found(q):
        response = client.get(f"{ADMIN}/orgs", query_string={"q": q}, headers=bearer(root))
        assert "X-Pagination" in response.headers
        return [org["name"] for org in response.get_json()]

    assert found("ROCKET") == ["Acme Rockets"]
    assert found("acme-rockets") == ["Acme Rockets"]  # the slug
    assert found("") == ["Globex", "Acme Rockets", "owner", "root"]  # personal ones too, newest first

    body = client.get(f"{ADMIN}/orgs/{acme['id']}", headers=bearer(root)).get_json()
    assert (body["slug"], body["personal"], body["plan"]) == ("acme-rockets", False, "free")
    assert [(member["email"], member["role"]) for member in body["members"]] == [("owner@example.com", "owner")]
    assert (body["subscription"]["status"], body["usage"]["used"]) == ("none", 0)


def test_stats_count_users_activity_subscriptions_and_this_months_tokens(client):
    _, root = superuser(client)
    active, _ = person(client, "active@example.com")
    dormant, _ = person(client, "dormant@example.com")
    gone, _ = person(client, "gone@example.com")
    register(client, "never@example.com")  # never logged in
    long_ago = utcnow() - timedelta(days=40)
    db.session.execute(sa.update(AuthSession).where(AuthSession.user_id == dormant["id"]).values(created_at=long_ago))
    this_month = utcnow()
    last_month = this_month.replace(day=1) - timedelta(days=2)
    org = personal_org_id(active)
    db.session.add_all([
        Subscription(stripe_subscription_id="sub_1", org_id=org, stripe_customer_id="c1", status="active", plan="pro"),
        Subscription(stripe_subscription_id="sub_2", org_id=None, stripe_customer_id="c2", status="active", plan="pro"),
        Subscription(stripe_subscription_id="sub_3", org_id=None, stripe_customer_id="c3", status="canceled", plan="pro"),
        Subscription(stripe_subscription_id="sub_4", org_id=None, stripe_customer_id="c4", status="past_due", plan="team"),
        UsageRecord(user_id=active["id"], org_id=org, model="m", status=SETTLED, reserved_tokens=9,
                    input_tokens=100, output_tokens=23, created_at=this_month),
        UsageRecord(user_id=gone["id"], org_id=None, model="m", status=SETTLED, reserved_tokens=9,
                    input_tokens=1000, output_tokens=1000, created_at=last_month),
        UsageRecord(user_id=gone["id"], org_id=None, model="m", status="reserved", reserved_tokens=77,
                    expires_at=this_month + timedelta(minutes=5), created_at=this_month),
    ])
    db.session.commit()
    assert client.patch(f"{ADMIN}/users/{gone['id']}", json={"is_active": False}, headers=bearer(root)).status_code == 200

    stats = client.get(f"{ADMIN}/stats", headers=bearer(root)).get_json()
    # root, active and gone logged in within 30 days; dormant's only login is 40 days old.
    assert stats["users"] == {"total": 5, "active_last_30_days": 3, "deactivated": 1, "superusers": 1}
    assert stats["subscriptions"] == [
        {"plan": "pro", "status": "active", "count": 2},
        {"plan": "pro", "status": "canceled", "count": 1},
        {"plan": "team", "status": "past_due", "count": 1},
    ]
    assert (stats["ai_tokens"]["used"], stats["ai_tokens"]["reserved"]) == (123, 77)


def test_the_admin_audit_log_lists_operators_actions_newest_first_in_pages(client):
    _, root = superuser(client)
    target, token = person(client, "customer@example.com")
    client.post("/api/v1/orgs", json={"name": "Acme"}, headers=bearer(token))  # an organization's event
    for flag in (True, False, True):
        as_operator(client, "PATCH", f"{ADMIN}/users/{target['id']}", root, json={"email_verified": flag})
    as_operator(client, "POST", f"{ADMIN}/users/{target['id']}/logout-all", root)

    first = client.get(f"{ADMIN}/audit-log", query_string={"page_size": 3}, headers=bearer(root))
    assert json.loads(first.headers["X-Pagination"])["total"] == 4
    events = first.get_json()
    assert [event["action"] for event in events] == ["admin.user_logged_out", "admin.user_updated", "admin.user_updated"]
    assert {(event["actor_user_id"], event["ip_address"], event["target"]) for event in events} == {
        (1, OPERATOR_ADDRESS, f"user:{target['id']}"),
    }
    assert events[1]["details"]["email_verified"] == {"from": False, "to": True}
    second = client.get(f"{ADMIN}/audit-log", query_string={"page_size": 3, "page": 2}, headers=bearer(root)).get_json()
    assert [event["details"]["email_verified"]["to"] for event in second] == [True]


# --- seeding the first superuser --------------------------------------------------------------


def test_create_superuser_reads_the_password_from_stdin_and_makes_a_verified_superuser(client):
    result = cli(client, "users", "create-superuser", "Root@Example.com", "--password-stdin", input="a long operator passphrase\n")
    assert result.exit_code == 0, result.output
    assert "created superuser root@example.com" in result.output
    row = db.session.scalar(sa.select(User).where(User.email == ROOT_EMAIL))
    assert (row.is_superuser, row.is_active, row.email_verified) == (True, True, True)
    token = login(client, ROOT_EMAIL, "a long operator passphrase")["access_token"]
    assert client.get(f"{ADMIN}/stats", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("password, reason", [
    ("password1", "most common"), ("short", "Length"), ("   \t    ", "only spaces"), ("root@example.com!", "email"),
])
def test_create_superuser_refuses_a_weak_password_and_creates_nothing(client, password, reason):
    result = cli(client, "users", "create-superuser", ROOT_EMAIL, "--password-stdin", input=password + "\n")
    assert result.exit_code == 1
    assert "password refused" in result.output and reason in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_create_superuser_asks_twice_for_the_password_without_stdin(client):
    mismatch = cli(client, "users", "create-superuser", ROOT_EMAIL, input="a long operator passphrase\nanother one entirely\n" * 2)
    assert mismatch.exit_code == 1  # click asks again, then gives up at the end of the input
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    same = cli(client, "users", "create-superuser", ROOT_EMAIL, input="a long operator passphrase\n" * 2)
    assert same.exit_code == 0, same.output
    login(client, ROOT_EMAIL, "a long operator passphrase")


def verified(email):
    """The owner of ``email`` opened the verification link (arranged in the database)."""
    db.session.execute(sa.update(User).where(User.email == email).values(email_verified=True))
    db.session.commit()


def test_create_superuser_promotes_an_existing_account_without_touching_its_password(client):
    register(client, ROOT_EMAIL)
    verified(ROOT_EMAIL)
    result = cli(client, "users", "create-superuser", ROOT_EMAIL, "--password-stdin", input="something else entirely\n")
    assert result.exit_code == 0, result.output
    assert "already" in result.output and "unchanged" in result.output
    token = login(client, ROOT_EMAIL, PASSWORD)["access_token"]
    assert client.get(f"{ADMIN}/stats", headers=bearer(token)).status_code == 200


def test_create_superuser_refuses_an_address_that_is_not_one(client):
    result = cli(client, "users", "create-superuser", "not-an-address", "--password-stdin", input="a long operator passphrase\n")
    assert result.exit_code == 1 and "not a valid email address" in result.output


def test_ensure_superuser_does_nothing_without_the_setting(client):
    result = cli(client, "users", "ensure-superuser")
    assert result.exit_code == 0 and "not set" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


def test_ensure_superuser_creates_the_first_superuser_once_and_never_changes_its_password(app_with):
    seeded = app_with(FIRST_SUPERUSER_EMAIL=ROOT_EMAIL, FIRST_SUPERUSER_PASSWORD="the first operator's passphrase")
    first = cli(seeded, "users", "ensure-superuser")
    assert first.exit_code == 0 and "created superuser" in first.output

    changed = app_with(FIRST_SUPERUSER_EMAIL=ROOT_EMAIL, FIRST_SUPERUSER_PASSWORD="a different passphrase now")
    again = cli(changed, "users", "ensure-superuser")
    assert again.exit_code == 0 and "unchanged" in again.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 1
    token = login(changed, ROOT_EMAIL, "the first operator's passphrase")["access_token"]
    assert changed.get(f"{ADMIN}/stats", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("command", ["ensure-superuser", "create-superuser"])
@pytest.mark.parametrize("state", ["unverified", "deactivated"])
def test_seeding_never_promotes_an_account_its_operator_may_not_own(app_with, command, state):
    """Issue 21 item 4: whoever registers FIRST_SUPERUSER_EMAIL first (the operator's account
    moved to another address, or was never made) must not become a superuser at the next release."""
    seeded = app_with(FIRST_SUPERUSER_EMAIL=ROOT_EMAIL, FIRST_SUPERUSER_PASSWORD="the first operator's passphrase")
    register(seeded, ROOT_EMAIL)
    if state == "deactivated":
        verified(ROOT_EMAIL)
        assert cli(seeded, "users", "deactivate", ROOT_EMAIL).exit_code == 0
    args = [command] if command == "ensure-superuser" else [command, ROOT_EMAIL, "--password-stdin"]
    result = cli(seeded, "users", *args, input="the first operator's passphrase\n")
    assert result.exit_code == 3, result.output
    assert ("not verified" if state == "unverified" else "deactivated") in result.output
    db.session.expire_all()
    assert db.session.scalar(sa.select(User.is_superuser).where(User.email == ROOT_EMAIL)) is False


def test_seeding_promotes_nobody_after_the_operators_account_is_deleted(app_with):
    seeded = app_with(FIRST_SUPERUSER_EMAIL=ROOT_EMAIL, FIRST_SUPERUSER_PASSWORD="the first operator's passphrase")
    assert cli(seeded, "users", "ensure-superuser").exit_code == 0
    token = login(seeded, ROOT_EMAIL, "the first operator's passphrase")["access_token"]
    deleted = seeded.delete("/api/v1/users/me", json={"current_password": "the first operator's passphrase"},
                            headers=bearer(token))
    assert deleted.status_code == 204
    newcomer = register(seeded, ROOT_EMAIL)  # the address is free again
    result = cli(seeded, "users", "ensure-superuser")
    assert result.exit_code == 3 and "not verified" in result.output
    assert user_row(newcomer["id"]).is_superuser is False


def _migrate_steps():
    """The migrate step's shell command as compose (``$$`` is compose's escaped ``$``) and the
    Kubernetes Job run it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["migrate"]["command"]
    job = yaml.safe_load((ROOT / "deploy/kubernetes/base/migrate-job.yaml").read_text())
    [container] = job["spec"]["template"]["spec"]["containers"]
    return {"compose": compose[2].replace("$$", "$"), "kubernetes": container["command"][2]}


@pytest.mark.parametrize("where", ["compose", "kubernetes"])
def test_the_migrate_step_goes_on_past_a_refused_promotion_and_stops_on_other_failures(database, where):
    command = _migrate_steps()[where]
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    app = make_app()
    with app.app_context():
        register(app.test_client(), ROOT_EMAIL)  # unverified: not promoted
    env = child_env(PATH=path, FIRST_SUPERUSER_EMAIL=ROOT_EMAIL, FIRST_SUPERUSER_PASSWORD="the first operator's passphrase")
    refused = subprocess.run(["sh", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 0, refused.stderr
    assert "not verified" in refused.stderr
    weak = subprocess.run(["sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=child_env(PATH=path, FIRST_SUPERUSER_EMAIL="second@example.com", FIRST_SUPERUSER_PASSWORD="password"))
    assert weak.returncode == 1 and "password refused" in weak.stderr


def test_ensure_superuser_refuses_to_create_an_account_without_a_password_or_with_a_weak_one(app_with):
    without = cli(app_with(FIRST_SUPERUSER_EMAIL=ROOT_EMAIL), "users", "ensure-superuser")
    assert without.exit_code == 1 and "FIRST_SUPERUSER_PASSWORD is not set" in without.output
    weak = cli(app_with(FIRST_SUPERUSER_EMAIL=ROOT_EMAIL, FIRST_SUPERUSER_PASSWORD="password"), "users", "ensure-superuser")
    assert weak.exit_code == 1 and "password refused" in weak.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
