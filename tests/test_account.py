"""Self-service account lifecycle: deleting the account (personal data gone, accounting kept,
subscriptions canceled, refused for a team's last owner) and exporting everything stored."""
import pytest
import sqlalchemy as sa

from saas.ai.models import AiJob
from saas.extensions import db
from saas.mail.models import MailMessage
from saas.orgs.models import AuditEvent, Membership
from saas.usage.models import UsageRecord
from saas.users.models import User
from tests.ai_support import CHAT, JOBS, messages
from tests.helpers import PASSWORD, bearer, login
from tests.org_support import ORGS, Team, subscribe_org

ME = "/api/v1/users/me"
EXPORT = "/api/v1/users/me/export"


@pytest.fixture
def team(app_with, smtp):
    smtp.messages.clear()
    return Team(app_with(REDIS_URL="", **smtp.settings), smtp)


def delete_me(team, token, password=PASSWORD):
    return team.client.delete(ME, json={"current_password": password}, headers=bearer(token))


def user_row(user_id):
    db.session.expire_all()
    return db.session.get(User, user_id)


def test_deleting_needs_the_current_password_and_a_session(team):
    token = team.person("careful@example.com")
    wrong = delete_me(team, token, password="not my password at all")
    assert (wrong.status_code, list(wrong.get_json()["errors"])) == (400, ["current_password"])
    assert team.client.delete(ME, json={}, headers=bearer(token)).status_code == 422
    key = team.client.post("/api/v1/api-keys", json={"name": "k"}, headers=bearer(token)).get_json()["key"]
    assert team.client.delete(ME, json={"current_password": PASSWORD}, headers={"X-API-Key": key}).status_code == 401
    assert team.get(ME, token).get_json()["email"] == "careful@example.com"  # nothing happened


def test_deleting_an_account_removes_personal_data_and_keeps_accounting(team, fake_stripe, fake_openai):
    owner = team.person("owner@example.com")
    org = team.org(owner)
    leaver = team.join(owner, org["id"], "leaver@example.com", "admin")
    leaver_id = team.get(ME, leaver).get_json()["id"]
    personal_key = team.client.post("/api/v1/api-keys", json={"name": "mine"}, headers=bearer(leaver)).get_json()["key"]
    org_key = team.client.post(f"{ORGS}/{org['id']}/api-keys", json={"name": "shared"}, headers=bearer(leaver)).get_json()["key"]
    assert team.client.post(CHAT, json={"messages": messages()}, headers={"X-API-Key": org_key}).status_code == 200
    assert team.client.post(JOBS, json={"messages": messages("secret plans")}, headers=bearer(leaver)).status_code == 202
    personal_org_id = user_row(leaver_id).personal_org.id
    subscription = subscribe_org(team, leaver, personal_org_id, fake_stripe, price_id="price_pro")
    usage_before = db.session.scalar(sa.select(sa.func.count()).select_from(UsageRecord).where(UsageRecord.user_id == leaver_id))
    assert usage_before >= 2

    assert delete_me(team, leaver).status_code == 204

    # Every credential stops working at once.
    assert team.get(ME, leaver).status_code == 401
    for key in (personal_key, org_key):
        assert team.client.get(ME, headers={"X-API-Key": key}).status_code == 401
    assert team.client.post("/api/v1/auth/login", json={"email": "leaver@example.com", "password": PASSWORD}).status_code == 401
    # No personal data remains on the row; it stays for the records that must be kept.
    row = user_row(leaver_id)
    assert (row.email, row.full_name, row.is_active, row.email_verified) == (f"deleted-{leaver_id}@deleted.invalid", None, False, False)
    assert row.deleted_at is not None and row.personal_org.name == "Deleted account"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(UsageRecord).where(UsageRecord.user_id == leaver_id)) == usage_before
    assert db.session.scalars(sa.select(AiJob).where(AiJob.user_id == leaver_id)).all() == []
    assert db.session.scalars(sa.select(MailMessage).where(
        sa.or_(MailMessage.user_id == leaver_id, MailMessage.to_address == "leaver@example.com"))).all() == []
    # They left the team, which says so in its audit log; their subscription is canceled in Stripe.
    assert [member["email"] for member in team.get(f"{ORGS}/{org['id']}/members", owner).get_json()] == ["owner@example.com"]
    assert db.session.scalar(sa.select(AuditEvent.details).where(
        AuditEvent.org_id == org["id"], AuditEvent.action == "member.left")) == {"role": "admin", "reason": "account deleted"}
    assert fake_stripe.subscriptions[subscription["id"]]["status"] == "canceled"
    # The address is free again.
    assert team.client.post("/api/v1/auth/register", json={"email": "leaver@example.com", "password": PASSWORD}).status_code == 201


def test_the_last_owner_of_a_team_cannot_delete_the_account(team):
    owner = team.person("owner@example.com")
    org = team.org(owner)
    colleague = team.join(owner, org["id"], "colleague@example.com")
    refused = delete_me(team, owner)
    assert refused.status_code == 409
    assert refused.get_json()["errors"]["organizations"] == [org["id"]]
    assert team.get(ME, owner).status_code == 200  # nothing happened: the session still works
    assert len(team.get(f"{ORGS}/{org['id']}/members", owner).get_json()) == 2

    colleague_id = team.get(ME, colleague).get_json()["id"]
    team.client.patch(f"{ORGS}/{org['id']}/members/{colleague_id}", json={"role": "owner"}, headers=bearer(owner))
    assert delete_me(team, owner).status_code == 204
    assert [member["role"] for member in team.get(f"{ORGS}/{org['id']}/members", colleague).get_json()] == ["owner"]


def test_the_sweep_cancels_a_deleted_accounts_subscription_whose_job_was_lost(team, fake_stripe):
    from saas.sweeps import REPAIRS

    token = team.person("gone@example.com")
    user_id = team.get(ME, token).get_json()["id"]
    subscription = subscribe_org(team, token, user_row(user_id).personal_org.id, fake_stripe, price_id="price_pro")
    fake_stripe.mode = "down"  # the job after the deletion fails: Stripe keeps charging
    assert delete_me(team, token).status_code == 204
    assert fake_stripe.subscriptions[subscription["id"]]["status"] == "active"
    fake_stripe.mode = "ok"
    assert REPAIRS["deleted_accounts_subscriptions"]() == {"canceled": 1, "failed": 0}
    assert fake_stripe.subscriptions[subscription["id"]]["status"] == "canceled"
    assert REPAIRS["deleted_accounts_subscriptions"]() == {"canceled": 0, "failed": 0}


def test_the_export_holds_everything_stored_about_the_caller_and_no_secret(team, fake_openai, fake_stripe):
    owner = team.person("owner@example.com")
    org = team.org(owner, "Exported Inc")
    key = team.client.post(f"{ORGS}/{org['id']}/api-keys", json={"name": "shared"}, headers=bearer(owner)).get_json()
    assert team.client.post(CHAT, json={"messages": messages()}, headers=bearer(owner)).status_code == 200
    team.client.post(JOBS, json={"messages": messages("a prompt of mine")}, headers=bearer(owner))
    response = team.get(EXPORT, owner)
    assert response.status_code == 200
    document = response.get_json()
    assert set(document) == {"profile", "sessions", "api_keys", "organizations", "invitations", "audit_events",
                             "subscriptions", "usage", "ai_jobs", "mail", "two_factor",
                             "identities"}
    assert document["profile"]["email"] == "owner@example.com"
    assert len(document["sessions"]) == 1 and document["sessions"][0]["ip_address"] == "127.0.0.1"
    assert [(item["name"], item["prefix"]) for item in document["api_keys"]] == [("shared", key["prefix"])]
    assert {(item["name"], item["role"]) for item in document["organizations"]} == {("Owner", "owner"), ("Exported Inc", "owner")}
    assert {"org.created", "api_key.created"} <= {event["action"] for event in document["audit_events"]}
    assert len(document["usage"]) == 2 and document["ai_jobs"][0]["messages"] == messages("a prompt of mine")
    assert [message["template"] for message in document["mail"]] == ["verify_email"]
    text = response.get_data(as_text=True)
    for secret in (key["key"], db.session.get(User, document["profile"]["id"]).hashed_password, "key_hash", "token_hash", "refresh_jti"):
        assert secret not in text
    assert team.client.get(EXPORT, headers={"X-API-Key": key["key"]}).status_code == 401
    # Someone else's export holds none of it.
    other = team.get(EXPORT, team.person("other@example.com")).get_json()
    assert (other["api_keys"], other["usage"], len(other["organizations"])) == ([], [], 1)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Membership)) == 3


def test_an_operator_sees_a_deleted_account_and_cannot_bring_it_back(team):
    from saas.users.service import create_superuser

    create_superuser("ops@example.com", "operators keep the lights on")
    admin = team.client.post("/api/v1/auth/login", json={"email": "ops@example.com", "password": "operators keep the lights on"}).get_json()["access_token"]
    token = team.person("gone@example.com")
    user_id = team.get(ME, token).get_json()["id"]
    assert delete_me(team, token).status_code == 204
    detail = team.get(f"/api/v1/admin/users/{user_id}", admin).get_json()
    assert detail["deleted_at"] is not None and detail["email"] == f"deleted-{user_id}@deleted.invalid"
    refused = team.client.patch(f"/api/v1/admin/users/{user_id}", json={"is_active": True}, headers=bearer(admin))
    assert refused.status_code == 409
    assert user_row(user_id).is_active is False


# --- issue 21: what deletion and exports must not leave or show -----------------------------


def test_an_export_shows_nothing_of_the_previous_owner_of_the_address(team):
    """Item 10: A moves away from alice@, B registers alice@: B's export holds none of A's mail
    or invitations, though they were sent to that address."""
    owner = team.person("owner@example.com")
    org = team.org(owner)
    first = team.join(owner, org["id"], "alice@example.com")
    moved = team.client.post("/api/v1/users/me/email", json={"email": "a.new@example.com", "current_password": PASSWORD},
                             headers=bearer(first))
    assert moved.status_code == 202
    confirmation = team.mailed("a.new@example.com", invitation=False)
    assert team.client.post("/api/v1/auth/verify-email", json={"token": confirmation.token}).status_code == 204

    newcomer = team.person("alice@example.com")
    document = team.get(EXPORT, newcomer).get_json()
    assert [message["template"] for message in document["mail"]] == ["verify_email"]
    assert all(message["to"] == "alice@example.com" for message in document["mail"])
    assert document["invitations"] == []
    # A's export still holds A's own.
    mine = team.get(EXPORT, login(team.client, "a.new@example.com")["access_token"]).get_json()
    assert {"verify_email", "email_change", "email_change_notice"} <= {message["template"] for message in mine["mail"]}
    assert [invitation["org_id"] for invitation in mine["invitations"]] == [org["id"]]


def test_deleting_an_account_scrubs_its_personal_data_from_what_is_kept(team):
    """Item 13: the invitee address in the audit log, an operator's events about the account,
    the addresses and clients of its sessions and of its own audit events."""
    from saas.auth.models import AuthSession
    from saas.orgs.models import Invitation
    from saas.users.service import create_superuser

    create_superuser("ops@example.com", "operators keep the lights on")
    admin = login(team.client, "ops@example.com", "operators keep the lights on")["access_token"]
    owner = team.person("owner@example.com")
    org = team.org(owner)
    leaver = team.join(owner, org["id"], "leaver@example.com", "admin")
    leaver_id = team.get(ME, leaver).get_json()["id"]
    assert team.client.patch(f"{ORGS}/{org['id']}", json={"name": "Renamed"}, headers=bearer(leaver)).status_code == 200
    assert team.client.post(f"/api/v1/admin/users/{leaver_id}/logout-all", headers=bearer(admin)).status_code == 204
    assert team.client.patch(f"/api/v1/admin/users/{leaver_id}", json={"email_verified": True},
                             headers=bearer(admin)).status_code == 200
    leaver = login(team.client, "leaver@example.com")["access_token"]
    text_before = str([event.details for event in db.session.scalars(sa.select(AuditEvent))])
    assert "leaver@example.com" in text_before

    assert delete_me(team, leaver).status_code == 204

    db.session.expire_all()
    placeholder = f"deleted-{leaver_id}@deleted.invalid"
    events = db.session.scalars(sa.select(AuditEvent)).all()
    assert "leaver@example.com" not in str([(event.details, event.target) for event in events])
    assert {event.details.get("email") for event in events if event.action.startswith("admin.")} == {placeholder}
    assert [event.details["email"] for event in events if event.action == "invitation.created"] == [placeholder]
    assert all(event.ip_address is None for event in events if event.actor_user_id == leaver_id)
    assert any(event.ip_address for event in events if event.actor_user_id != leaver_id)  # others' stay
    assert db.session.scalars(sa.select(Invitation.email)).all() == [placeholder]
    sessions = db.session.scalars(sa.select(AuthSession).where(AuthSession.user_id == leaver_id)).all()
    assert sessions and all((s.ip_address, s.user_agent) == (None, None) for s in sessions)


def test_only_admins_see_other_members_addresses_in_an_organizations_usage(team, fake_openai):
    """Item 13: a member sees their own row, and the others' ids only."""
    owner = team.person("owner@example.com")
    org = team.org(owner)
    member = team.join(owner, org["id"], "member@example.com")
    for token in (owner, member):
        call = team.client.post(CHAT, json={"messages": messages()}, headers={**bearer(token), "X-Org-Id": str(org["id"])})
        assert call.status_code == 200, call.get_json()

    as_member = team.get(f"{ORGS}/{org['id']}/usage", member).get_json()["members"]
    as_owner = team.get(f"{ORGS}/{org['id']}/usage", owner).get_json()["members"]
    assert sorted((row["email"], row["full_name"]) for row in as_owner) == [
        ("member@example.com", "Member"), ("owner@example.com", "Owner")]
    assert sorted((row["email"] or "", row["full_name"] or "") for row in as_member) == [
        ("", ""), ("member@example.com", "Member")]
    assert {row["user_id"] for row in as_member} == {row["user_id"] for row in as_owner}


def test_deleting_an_account_cancels_its_own_subscriptions_only(app_with, smtp, fake_stripe, redis_url):
    """Item 14: the cancellations queued when an account is deleted are its own, not every
    deleted account's still live (those are the sweep's to repair, at its own pace)."""
    smtp.messages.clear()
    team = Team(app_with(REDIS_URL="", **smtp.settings), smtp)
    earlier = team.person("earlier@example.com")
    earlier_id = team.get(ME, earlier).get_json()["id"]
    left_live = subscribe_org(team, earlier, user_row(earlier_id).personal_org.id, fake_stripe, price_id="price_pro")
    fake_stripe.mode = "down"  # its cancellation fails: it stays live, for the sweep
    assert delete_me(team, earlier).status_code == 204
    fake_stripe.mode = "ok"
    now = team.person("now@example.com")
    now_id = team.get(ME, now).get_json()["id"]
    own = subscribe_org(team, now, user_row(now_id).personal_org.id, fake_stripe, price_id="price_pro")

    assert delete_me(team, now).status_code == 204

    assert fake_stripe.subscriptions[own["id"]]["status"] == "canceled"
    assert fake_stripe.subscriptions[left_live["id"]]["status"] == "active"
