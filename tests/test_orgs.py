"""Teams: organizations, roles, invitations, and the billing, keys, quotas and audit log that
belong to an organization. Every rule is tried from the side that should be refused."""
import hashlib
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.core.time import utcnow
from saas.extensions import db
from saas.orgs.models import AuditEvent, Invitation, Membership, Organization
from tests.ai_support import CHAT, USAGE, messages
from tests.billing_support import deliver_ok
from tests.conftest import REDIS_URL
from tests.fake_stripe import make_event
from tests.helpers import at_once, bearer, login, register, tampered
from tests.org_support import ACCEPT, ORGS, Team, subscribe_org
from tests.servers import run_rq_worker_burst

DECLINE = "/api/v1/invitations/decline"


# --- arrangements ---------------------------------------------------------------------------


@pytest.fixture
def team(app_with, smtp):
    smtp.messages.clear()
    return Team(app_with(REDIS_URL="", **smtp.settings), smtp)


@pytest.fixture
def acme(team):
    """Acme with an owner, an admin and a member: (org, {role: token})."""
    owner = team.person("owner@example.com")
    org = team.org(owner)
    admin = team.join(owner, org["id"], "admin@example.com", "admin")
    member = team.join(owner, org["id"], "member@example.com", "member")
    return org, {"owner": owner, "admin": admin, "member": member}


def user_id(team, token):
    return team.get("/api/v1/users/me", token).get_json()["id"]


def audit_actions(org_id):
    db.session.expire_all()
    return [event.action for event in db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.org_id == org_id).order_by(AuditEvent.id)
    )]


# --- organizations --------------------------------------------------------------------------


def test_registration_gives_every_user_a_personal_organization_they_cannot_delete_leave_or_share(team):
    token = team.person("solo@example.com")
    [personal] = team.get(ORGS, token).get_json()
    assert (personal["personal"], personal["role"]) == (True, "owner")
    me = user_id(team, token)
    assert team.client.delete(f"{ORGS}/{personal['id']}", headers=bearer(token)).status_code == 409
    assert team.client.delete(f"{ORGS}/{personal['id']}/members/{me}", headers=bearer(token)).status_code == 409
    assert team.invite(token, personal["id"], "friend@example.com").status_code == 409
    assert team.get(ORGS, token).get_json() == [personal]


def test_creating_an_organization_makes_the_caller_its_owner_with_a_unique_slug(team):
    token = team.person("founder@example.com")
    first = team.org(token, "Acme Rockets")
    assert set(first) == {"id", "name", "slug", "personal", "role", "require_mfa", "created_at"}
    assert (first["name"], first["slug"], first["personal"], first["role"]) == ("Acme Rockets", "acme-rockets", False, "owner")
    second = team.org(token, "Acme Rockets")
    assert second["slug"] != first["slug"] and second["slug"].startswith("acme-rockets")
    assert [org["id"] for org in team.get(ORGS, token).get_json()][1:] == [first["id"], second["id"]]
    assert team.get(f"{ORGS}/{first['id']}", token).get_json() == first
    assert "org.created" in audit_actions(first["id"])


def test_a_non_member_gets_404_for_every_path_of_an_organization(team, acme):
    org, _ = acme
    outsider = team.person("outsider@example.com")
    base = f"{ORGS}/{org['id']}"
    owner_id = db.session.scalar(sa.select(Membership.user_id).where(Membership.org_id == org["id"], Membership.role == "owner"))
    requests = [
        ("get", base, None), ("patch", base, {"name": "Mine"}), ("delete", base, None),
        ("get", f"{base}/members", None), ("patch", f"{base}/members/{owner_id}", {"role": "member"}),
        ("delete", f"{base}/members/{owner_id}", None),
        ("get", f"{base}/invitations", None), ("post", f"{base}/invitations", {"email": "x@example.com", "role": "owner"}),
        ("delete", f"{base}/invitations/1", None), ("get", f"{base}/audit-log", None),
        ("get", f"{base}/api-keys", None), ("post", f"{base}/api-keys", {"name": "steal"}),
        ("delete", f"{base}/api-keys/1", None), ("get", f"{base}/usage", None),
        ("get", f"{base}/billing/subscription", None), ("post", f"{base}/billing/checkout", {"plan": "team"}),
        ("get", f"{base}/billing/portal", None),
    ]
    for method, path, body in requests:
        response = getattr(team.client, method)(path, json=body, headers=bearer(outsider))
        assert response.status_code == 404, (method, path, response.status_code)
        # The same answer as for an organization that does not exist: nothing is learnt.
        missing = getattr(team.client, method)(path.replace(base, f"{ORGS}/999999"), json=body, headers=bearer(outsider))
        assert missing.status_code == 404 and missing.get_json()["message"] == response.get_json()["message"]
    assert team.get(base, team.person("another@example.com")).status_code == 404
    assert db.session.get(Organization, org["id"]).name == "Acme"


def test_a_member_reads_but_cannot_manage(team, acme, fake_stripe):
    org, tokens = acme
    member = tokens["member"]
    base = f"{ORGS}/{org['id']}"
    for path in (base, f"{base}/members", f"{base}/usage", f"{base}/billing/subscription"):
        assert team.get(path, member).status_code == 200, path
    refused = [
        ("patch", base, {"name": "Renamed"}), ("delete", base, None),
        ("post", f"{base}/invitations", {"email": "friend@example.com", "role": "member"}),
        ("get", f"{base}/invitations", None), ("get", f"{base}/audit-log", None),
        ("get", f"{base}/api-keys", None), ("post", f"{base}/api-keys", {"name": "mine"}),
        ("post", f"{base}/billing/checkout", {"plan": "team"}), ("get", f"{base}/billing/portal", None),
        ("patch", f"{base}/members/{user_id(team, tokens['admin'])}", {"role": "member"}),
        ("delete", f"{base}/members/{user_id(team, tokens['admin'])}", None),
    ]
    before = len(fake_stripe.requests)
    for method, path, body in refused:
        response = getattr(team.client, method)(path, json=body, headers=bearer(member))
        assert response.status_code == 403, (method, path, response.status_code)
        assert response.get_json()["errors"]["role"] == ["member"]
    assert len(fake_stripe.requests) == before  # nobody called Stripe for them
    assert db.session.get(Organization, org["id"]).name == "Acme"
    assert len(team.get(f"{base}/members", member).get_json()) == 3


def test_an_admin_manages_members_but_never_owners_or_billing(team, acme):
    org, tokens = acme
    admin = tokens["admin"]
    base = f"{ORGS}/{org['id']}"
    owner_id, member_id = user_id(team, tokens["owner"]), user_id(team, tokens["member"])

    assert team.invite(admin, org["id"], "boss@example.com", "owner").status_code == 403  # inviting an owner
    assert team.client.patch(f"{base}/members/{owner_id}", json={"role": "member"}, headers=bearer(admin)).status_code == 403
    assert team.client.patch(f"{base}/members/{member_id}", json={"role": "owner"}, headers=bearer(admin)).status_code == 403
    assert team.client.delete(f"{base}/members/{owner_id}", headers=bearer(admin)).status_code == 403
    assert team.client.post(f"{base}/billing/checkout", json={"plan": "team"}, headers=bearer(admin)).status_code == 403
    assert team.get(f"{base}/billing/portal", admin).status_code == 403
    assert team.client.delete(base, headers=bearer(admin)).status_code == 403
    roles = {member["user_id"]: member["role"] for member in team.get(f"{base}/members", admin).get_json()}
    assert roles[owner_id] == "owner" and roles[member_id] == "member"

    # What an admin may do: rename, invite members and admins, move people between them.
    assert team.client.patch(base, json={"name": "Acme Labs"}, headers=bearer(admin)).get_json()["name"] == "Acme Labs"
    assert team.invite(admin, org["id"], "helper@example.com", "admin").status_code == 201
    promoted = team.client.patch(f"{base}/members/{member_id}", json={"role": "admin"}, headers=bearer(admin))
    assert (promoted.status_code, promoted.get_json()["role"]) == (200, "admin")
    assert team.get(f"{base}/audit-log", admin).status_code == 200


def test_only_an_owner_grants_and_removes_owner(team, acme):
    org, tokens = acme
    base = f"{ORGS}/{org['id']}"
    admin_id = user_id(team, tokens["admin"])
    granted = team.client.patch(f"{base}/members/{admin_id}", json={"role": "owner"}, headers=bearer(tokens["owner"]))
    assert (granted.status_code, granted.get_json()["role"]) == (200, "owner")
    # The new owner may now demote the first one: there are two.
    owner_id = user_id(team, tokens["owner"])
    demoted = team.client.patch(f"{base}/members/{owner_id}", json={"role": "admin"}, headers=bearer(tokens["admin"]))
    assert (demoted.status_code, demoted.get_json()["role"]) == (200, "admin")
    assert ("member.role_changed", "member.role_changed") == tuple(audit_actions(org["id"])[-2:])


def test_the_last_owner_can_never_be_demoted_removed_or_leave(team, acme):
    org, tokens = acme
    base = f"{ORGS}/{org['id']}"
    owner = tokens["owner"]
    owner_id = user_id(team, owner)
    for role in ("admin", "member"):
        refused = team.client.patch(f"{base}/members/{owner_id}", json={"role": role}, headers=bearer(owner))
        assert refused.status_code == 409, refused.get_json()
    assert team.client.delete(f"{base}/members/{owner_id}", headers=bearer(owner)).status_code == 409  # leaving
    assert {member["role"] for member in team.get(f"{base}/members", owner).get_json() if member["user_id"] == owner_id} == {"owner"}

    # With a second owner, the first one may leave; then the second is the last one.
    admin_id = user_id(team, tokens["admin"])
    team.client.patch(f"{base}/members/{admin_id}", json={"role": "owner"}, headers=bearer(owner))
    assert team.client.delete(f"{base}/members/{owner_id}", headers=bearer(owner)).status_code == 204
    assert team.get(base, owner).status_code == 404
    assert team.client.delete(f"{base}/members/{admin_id}", headers=bearer(tokens["admin"])).status_code == 409


def test_concurrent_demotions_of_two_owners_leave_one(team, acme, app_with):
    org, tokens = acme
    base = f"{ORGS}/{org['id']}"
    owner_id, admin_id = user_id(team, tokens["owner"]), user_id(team, tokens["admin"])
    team.client.patch(f"{base}/members/{admin_id}", json={"role": "owner"}, headers=bearer(tokens["owner"]))
    app = team.client.application
    pairs = iter([(tokens["owner"], owner_id), (tokens["admin"], admin_id)])

    def demote_yourself(client):
        token, me = next(pairs)
        return client.patch(f"{base}/members/{me}", json={"role": "admin"}, headers=bearer(token)).status_code

    assert sorted(at_once(app, 2, demote_yourself)) == [200, 409]
    owners = db.session.scalar(
        sa.select(sa.func.count()).select_from(Membership).where(Membership.org_id == org["id"], Membership.role == "owner")
    )
    assert owners == 1


def test_a_member_leaves_and_loses_access_at_once(team, acme):
    org, tokens = acme
    base = f"{ORGS}/{org['id']}"
    member = tokens["member"]
    assert team.client.delete(f"{base}/members/{user_id(team, member)}", headers=bearer(member)).status_code == 204
    assert team.get(base, member).status_code == 404
    assert team.client.post(CHAT, json={"messages": messages()}, headers={**bearer(member), "X-Org-Id": str(org["id"])}).status_code == 404
    assert "member.left" in audit_actions(org["id"])


def test_the_owner_deletes_an_organization_and_its_subscription_is_canceled(team, acme, fake_stripe):
    org, tokens = acme
    subscription = subscribe_org(team, tokens["owner"], org["id"], fake_stripe)
    assert team.client.delete(f"{ORGS}/{org['id']}", headers=bearer(tokens["owner"])).status_code == 204
    assert fake_stripe.subscriptions[subscription["id"]]["status"] == "canceled"
    assert team.get(f"{ORGS}/{org['id']}", tokens["owner"]).status_code == 404
    assert db.session.get(Organization, org["id"]) is None
    assert "org.deleted" in audit_actions(org["id"])  # the audit log outlives the organization


def test_an_organization_is_not_deleted_while_stripe_cannot_cancel_its_subscription(team, acme, fake_stripe):
    org, tokens = acme
    subscribe_org(team, tokens["owner"], org["id"], fake_stripe)
    fake_stripe.mode = "down"
    response = team.client.delete(f"{ORGS}/{org['id']}", headers=bearer(tokens["owner"]))
    assert (response.status_code, response.get_json()["code"]) == (502, 502)
    assert team.get(f"{ORGS}/{org['id']}", tokens["member"]).status_code == 200


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.services), "sqlite"])
def team_on_each_database(request, smtp):
    """A Team on PostgreSQL, and one on the embedded default of `make run` (SQLite)."""
    smtp.messages.clear()
    if request.param == "postgresql":
        return Team(request.getfixturevalue("app_with")(REDIS_URL="", **smtp.settings), smtp)
    return Team(request.getfixturevalue("embedded_with")(**smtp.settings), smtp)


def test_a_deleted_organization_leaves_no_member_no_key_and_no_id_to_inherit(team_on_each_database):
    """On SQLite the memberships and keys of a deleted organization used to stay (foreign keys
    were off), and the next organization took its id: a former admin then read and ran the
    newcomer's, and the old key acted for it."""
    team = team_on_each_database
    owner, admin = team.person("owner@example.com"), team.person("admin@example.com")
    org = team.org(owner)  # the newest organization, so the highest id
    assert team.invite(owner, org["id"], "admin@example.com", "admin").status_code == 201
    accepted = team.client.post(ACCEPT, json={"token": team.invitation_token("admin@example.com")}, headers=bearer(admin))
    assert accepted.status_code == 200
    key = org_key(team, owner, org["id"])["key"]
    assert team.client.delete(f"{ORGS}/{org['id']}", headers=bearer(owner)).status_code == 204

    assert team.client.get(USAGE, headers={"X-API-Key": key}).status_code == 401
    newcomer = team.person("newcomer@example.com")
    newcomers = team.get(ORGS, newcomer).get_json() + [team.org(newcomer, "Newco")]
    assert all(other["id"] > org["id"] for other in newcomers)
    base = f"{ORGS}/{org['id']}"
    for method, path, body in (
        ("get", base, None), ("patch", base, {"name": "Taken"}), ("get", f"{base}/members", None),
        ("get", f"{base}/audit-log", None), ("get", f"{base}/usage", None),
    ):
        response = getattr(team.client, method)(path, json=body, headers=bearer(admin))
        assert response.status_code == 404, (method, path, response.status_code)
    assert [listed["personal"] for listed in team.get(ORGS, admin).get_json()] == [True]
    assert team.client.post(CHAT, json={"messages": messages()}, headers={"X-API-Key": key}).status_code == 401
    assert [listed["name"] for listed in team.get(ORGS, newcomer).get_json()] == ["Newcomer", "Newco"]


def _delete_behind_the_foreign_keys(org_id):
    """Delete the organization's row alone, its members and keys left behind: as the previous
    release did on SQLite, or a tool that skips the foreign keys (a partial restore) would."""
    db.session.remove()
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys = OFF")  # per connection, outside a transaction
        else:
            connection.exec_driver_sql("SET session_replication_role = replica")  # no triggers: no cascades
        connection.execute(sa.delete(Organization).where(Organization.id == org_id))
        connection.commit()
        connection.invalidate()  # not back into the pool with the switch off


def test_the_gate_refuses_the_members_and_keys_of_an_organization_that_is_gone(team_on_each_database, fake_openai):
    team = team_on_each_database
    owner = team.person("owner@example.com")
    org = team.org(owner)
    key = org_key(team, owner, org["id"])["key"]
    _delete_behind_the_foreign_keys(org["id"])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Membership).where(Membership.org_id == org["id"])) == 1

    for path in (USAGE, f"{ORGS}/{org['id']}/usage"):
        refused = team.client.get(path, headers={"X-API-Key": key})
        assert refused.status_code == 401, (path, refused.get_json())
    assert team.client.post(CHAT, json={"messages": messages()}, headers={"X-API-Key": key}).status_code == 401
    assert team.get(f"{ORGS}/{org['id']}", owner).status_code == 404
    assert team.get(f"{ORGS}/{org['id']}/members", owner).status_code == 404
    assert team.get(USAGE, owner, headers={"X-Org-Id": str(org["id"])}).status_code == 404
    assert [listed["personal"] for listed in team.get(ORGS, owner).get_json()] == [True]
    assert fake_openai.completions() == []


# --- invitations ----------------------------------------------------------------------------


def test_an_invitation_is_mailed_with_a_link_whose_token_is_stored_hashed(team, acme):
    org, tokens = acme
    response = team.invite(tokens["admin"], org["id"], "Newcomer@Example.com", "member")
    assert response.status_code == 201
    invitation = response.get_json()
    assert set(invitation) == {"id", "email", "role", "expires_at"}
    assert (invitation["email"], invitation["role"]) == ("newcomer@example.com", "member")
    [message] = team.smtp.wait_for("newcomer@example.com")
    assert message.link.startswith("http://localhost:3000/invitations?token=")
    assert "Acme" in message.subject and message.token in message.html
    stored = db.session.get(Invitation, invitation["id"])
    assert stored.token_hash == hashlib.sha256(message.token.encode()).hexdigest()
    assert message.token not in str(stored.token_hash)
    assert abs(stored.expires_at - (utcnow() + timedelta(days=7))) < timedelta(minutes=1)
    assert [pending["id"] for pending in team.get(f"{ORGS}/{org['id']}/invitations", tokens["admin"]).get_json()] == [invitation["id"]]


def test_inviting_a_member_or_an_address_already_invited_is_a_409(team, acme):
    org, tokens = acme
    assert team.invite(tokens["owner"], org["id"], "member@example.com").status_code == 409
    assert team.invite(tokens["owner"], org["id"], "twice@example.com").status_code == 201
    assert team.invite(tokens["admin"], org["id"], "twice@example.com", "admin").status_code == 409
    assert len(team.get(f"{ORGS}/{org['id']}/invitations", tokens["owner"]).get_json()) == 1


def test_an_invitation_waits_for_someone_without_an_account_and_works_once(team, acme):
    org, tokens = acme
    team.invite(tokens["owner"], org["id"], "later@example.com", "admin")
    invitation_token = team.invitation_token("later@example.com")
    newcomer = team.person("later@example.com")
    accepted = team.client.post(ACCEPT, json={"token": invitation_token}, headers=bearer(newcomer))
    assert accepted.status_code == 200
    body = accepted.get_json()
    assert (body["org_id"], body["role"], body["email"]) == (org["id"], "admin", "later@example.com")
    again = team.client.post(ACCEPT, json={"token": invitation_token}, headers=bearer(newcomer))
    assert again.status_code == 400
    assert team.client.post(DECLINE, json={"token": invitation_token}, headers=bearer(newcomer)).status_code == 400
    assert team.get(f"{ORGS}/{org['id']}", newcomer).get_json()["role"] == "admin"
    assert team.get(f"{ORGS}/{org['id']}/invitations", tokens["owner"]).get_json() == []


def test_an_invitation_cannot_be_answered_by_another_address_or_an_unverified_one(team, acme):
    org, tokens = acme
    team.invite(tokens["owner"], org["id"], "invited@example.com")
    invitation_token = team.invitation_token("invited@example.com")
    for thief in (tokens["member"], team.person("thief@example.com")):
        assert team.client.post(ACCEPT, json={"token": invitation_token}, headers=bearer(thief)).status_code == 403
        assert team.client.post(DECLINE, json={"token": invitation_token}, headers=bearer(thief)).status_code == 403
    unverified = team.person("invited@example.com", verify=False)
    refused = team.client.post(ACCEPT, json={"token": invitation_token}, headers=bearer(unverified))
    assert refused.status_code == 403 and "Verify" in refused.get_json()["message"]
    assert len(team.get(f"{ORGS}/{org['id']}/members", tokens["owner"]).get_json()) == 3
    # The invitation is still open for its owner once the address is verified.
    verification = team.mailed("invited@example.com", invitation=False)
    team.client.post("/api/v1/auth/verify-email", json={"token": verification.token})
    assert team.client.post(ACCEPT, json={"token": invitation_token}, headers=bearer(unverified)).status_code == 200


def test_declined_revoked_expired_and_forged_invitations_add_nobody(team, acme):
    org, tokens = acme
    base = f"{ORGS}/{org['id']}"
    for email in ("declines@example.com", "revoked@example.com", "expired@example.com"):
        team.invite(tokens["admin"], org["id"], email)
    declines, revoked, expired = (team.person(email) for email in ("declines@example.com", "revoked@example.com", "expired@example.com"))

    token = team.invitation_token("declines@example.com")
    assert team.client.post(DECLINE, json={"token": token}, headers=bearer(declines)).status_code == 204
    assert team.client.post(ACCEPT, json={"token": token}, headers=bearer(declines)).status_code == 400

    [pending_revoked] = [item for item in team.get(f"{base}/invitations", tokens["admin"]).get_json() if item["email"] == "revoked@example.com"]
    assert team.client.delete(f"{base}/invitations/{pending_revoked['id']}", headers=bearer(tokens["admin"])).status_code == 204
    assert team.client.delete(f"{base}/invitations/{pending_revoked['id']}", headers=bearer(tokens["admin"])).status_code == 404
    assert team.client.post(ACCEPT, json={"token": team.invitation_token("revoked@example.com")}, headers=bearer(revoked)).status_code == 400

    db.session.execute(sa.update(Invitation).where(Invitation.email == "expired@example.com").values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert team.client.post(ACCEPT, json={"token": team.invitation_token("expired@example.com")}, headers=bearer(expired)).status_code == 400
    assert team.invite(tokens["admin"], org["id"], "expired@example.com").status_code == 201  # no longer blocks a new one

    for forged in ("x" * 43, tampered(team.invitation_token("expired@example.com"))):
        assert team.client.post(ACCEPT, json={"token": forged}, headers=bearer(expired)).status_code == 400
    assert len(team.get(f"{base}/members", tokens["owner"]).get_json()) == 3
    assert {"invitation.declined", "invitation.revoked"} <= set(audit_actions(org["id"]))


def test_an_invitation_needs_a_session(team, acme):
    org, tokens = acme
    team.invite(tokens["owner"], org["id"], "keyholder@example.com")
    token = team.invitation_token("keyholder@example.com")
    keyholder = team.person("keyholder@example.com")
    key = team.client.post("/api/v1/api-keys", json={"name": "k"}, headers=bearer(keyholder)).get_json()["key"]
    assert team.client.post(ACCEPT, json={"token": token}, headers={"X-API-Key": key}).status_code == 401
    assert team.client.post(ACCEPT, json={"token": token}).status_code == 401


# --- invitations: not a mail relay ----------------------------------------------------------


def limited_team(app_with, smtp, limit):
    """A team whose invitations are rate limited (INVITATION_SEND_LIMIT) in Redis."""
    smtp.messages.clear()
    return Team(app_with(REDIS_URL="", RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=REDIS_URL,
                         INVITATION_SEND_LIMIT=limit, **smtp.settings), smtp)


def invitation_mails(team, email):
    return [message for message in team.smtp.to(email) if "invited you" in message.subject]


def assert_too_many(response, reason=None):
    assert response.status_code == 429, response.get_json()
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    assert (body["code"], body["status"]) == (429, "Too Many Requests") and body["message"]
    if reason is not None:
        assert body["errors"] == {"reason": [reason]}


def test_an_unverified_address_cannot_send_invitations(team):
    """Even with REQUIRE_VERIFIED_EMAIL off (the suite's setting)."""
    owner = team.person("fresh@example.com", verify=False)
    org = team.org(owner, "Your account is locked - visit https://evil.example")
    refused = team.invite(owner, org["id"], "target@example.com")
    assert refused.status_code == 403
    assert refused.get_json()["errors"] == {"reason": ["email_not_verified"]}
    assert team.get(f"{ORGS}/{org['id']}/invitations", owner).get_json() == []
    assert invitation_mails(team, "target@example.com") == []

    verification = team.mailed("fresh@example.com", invitation=False)
    assert team.client.post("/api/v1/auth/verify-email", json={"token": verification.token}).status_code == 204
    assert team.invite(owner, org["id"], "target@example.com").status_code == 201
    assert len(invitation_mails(team, "target@example.com")) == 1


def test_a_sender_is_limited_across_their_organizations(app_with, smtp):
    team = limited_team(app_with, smtp, "3/hour")
    owner = team.person("owner@example.com")
    first, second = team.org(owner, "First"), team.org(owner, "Second")
    for org, email in ((first, "a@example.com"), (first, "b@example.com"), (second, "c@example.com")):
        assert team.invite(owner, org["id"], email).status_code == 201
    assert_too_many(team.invite(owner, second["id"], "d@example.com"))
    assert invitation_mails(team, "d@example.com") == []
    assert [item["email"] for item in team.get(f"{ORGS}/{second['id']}/invitations", owner).get_json()] == ["c@example.com"]


def test_an_organization_is_limited_whoever_of_its_admins_sends(app_with, smtp):
    team = limited_team(app_with, smtp, "3/hour")
    owner = team.person("owner@example.com")
    org = team.org(owner)
    admin = team.join(owner, org["id"], "admin@example.com", "admin")  # the organization's first
    assert team.invite(owner, org["id"], "a@example.com").status_code == 201
    assert team.invite(admin, org["id"], "b@example.com").status_code == 201
    assert_too_many(team.invite(admin, org["id"], "c@example.com"))  # the admin's second, the org's fourth
    assert invitation_mails(team, "c@example.com") == []
    # The admin's own count was not used up: another organization of theirs may invite.
    elsewhere = team.org(admin, "Elsewhere")
    assert team.invite(admin, elsewhere["id"], "c@example.com").status_code == 201


def test_a_stranger_cannot_spend_an_organizations_invitations(app_with, smtp):
    """A non-member's attempts are refused (404) and count against their own limit, never the
    organization's."""
    team = limited_team(app_with, smtp, "2/hour")
    owner = team.person("owner@example.com")
    org = team.org(owner)
    stranger = team.person("stranger@example.com")
    statuses = [team.invite(stranger, org["id"], f"spam{number}@example.com").status_code for number in range(5)]
    assert statuses == [404, 404, 429, 429, 429]
    for email in ("a@example.com", "b@example.com"):
        assert team.invite(owner, org["id"], email).status_code == 201


def test_one_address_gets_at_most_three_invitation_mails_a_day_from_one_organization(team, acme, app_with, smtp):
    """Revoking and inviting again does not reset it; it holds with rate limits off, and for
    every server process (it is counted in the database)."""
    org, tokens = acme
    base = f"{ORGS}/{org['id']}/invitations"
    another_server = Team(app_with(REDIS_URL="", **smtp.settings), smtp)
    for sender in (team, team, another_server):
        created = sender.invite(tokens["admin"], org["id"], "target@example.com")
        assert created.status_code == 201
        assert sender.client.delete(f"{base}/{created.get_json()['id']}", headers=bearer(tokens["admin"])).status_code == 204
    for sender in (team, another_server):
        refused = sender.invite(tokens["owner"], org["id"], "Target@Example.com")
        assert_too_many(refused, "address_invited_too_often")
        assert 23 * 3600 < int(refused.headers["Retry-After"]) <= 24 * 3600
    assert len(invitation_mails(team, "target@example.com")) == 3
    assert team.get(base, tokens["owner"]).get_json() == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Invitation).where(Invitation.email == "target@example.com")) == 3

    # Another organization is counted apart.
    other = team.org(tokens["owner"], "Other")
    assert team.invite(tokens["owner"], other["id"], "target@example.com").status_code == 201
    # The day is a moving one: once the first invitation is a day old there is room for one more.
    first = db.session.scalars(sa.select(Invitation).where(Invitation.org_id == org["id"]).where(
        Invitation.email == "target@example.com").order_by(Invitation.id)).first()
    first.created_at = utcnow() - timedelta(hours=24, seconds=1)
    db.session.commit()
    assert team.invite(tokens["owner"], org["id"], "target@example.com").status_code == 201
    assert len(invitation_mails(team, "target@example.com")) == 5


# --- keys, quotas, usage --------------------------------------------------------------------


def org_key(team, token, org_id, name="shared"):
    response = team.client.post(f"{ORGS}/{org_id}/api-keys", json={"name": name}, headers=bearer(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_an_org_key_acts_for_its_organization_only(team, acme, fake_openai):
    org, tokens = acme
    other = team.org(tokens["owner"], "Other")
    key = org_key(team, tokens["admin"], org["id"])["key"]
    assert team.client.post(CHAT, json={"messages": messages()}, headers={"X-API-Key": key}).status_code == 200
    org_usage = team.get(f"{ORGS}/{org['id']}/usage", tokens["member"]).get_json()
    assert org_usage["used"] > 0
    assert [row["email"] for row in team.get(f"{ORGS}/{org['id']}/usage", tokens["admin"]).get_json()["members"]] == ["admin@example.com"]
    assert [row["email"] for row in org_usage["members"]] == [None]  # a member sees only their own address
    assert team.get(USAGE, tokens["admin"]).get_json()["used"] == 0  # the admin's personal quota is untouched
    # The key of org A on org B: refused, whatever the header says.
    refused = team.client.post(CHAT, json={"messages": messages()}, headers={"X-API-Key": key, "X-Org-Id": str(other["id"])})
    assert refused.status_code == 403
    assert team.client.get(USAGE, headers={"X-API-Key": key, "X-Org-Id": str(other["id"])}).status_code == 403
    personal_key = team.client.post("/api/v1/api-keys", json={"name": "mine"}, headers=bearer(tokens["member"])).get_json()["key"]
    assert team.client.get(USAGE, headers={"X-API-Key": personal_key, "X-Org-Id": str(org["id"])}).status_code == 403
    # Keys never reach the org's own management endpoints.
    assert team.client.get(f"{ORGS}/{org['id']}/members", headers={"X-API-Key": key}).status_code == 401
    assert team.get(f"{ORGS}/{other['id']}/usage", tokens["owner"]).get_json()["used"] == 0


def test_org_keys_are_listed_and_revoked_by_admins_and_audited(team, acme):
    org, tokens = acme
    created = org_key(team, tokens["owner"], org["id"], "deploy")
    listed = team.get(f"{ORGS}/{org['id']}/api-keys", tokens["admin"]).get_json()
    assert [(key["id"], key["created_by"]) for key in listed] == [(created["id"], user_id(team, tokens["owner"]))]
    assert "key" not in listed[0]
    assert team.get("/api/v1/api-keys", tokens["owner"]).get_json() == []  # not a personal key
    # Another organization's key id is a 404, not someone else's revocation.
    other = team.org(tokens["member"], "Member's own")
    assert team.client.delete(f"{ORGS}/{other['id']}/api-keys/{created['id']}", headers=bearer(tokens["member"])).status_code == 404
    assert team.client.delete(f"{ORGS}/{org['id']}/api-keys/{created['id']}", headers=bearer(tokens["admin"])).status_code == 204
    assert team.client.get(USAGE, headers={"X-API-Key": created["key"]}).status_code == 401
    assert {"api_key.created", "api_key.revoked"} <= set(audit_actions(org["id"]))


@pytest.mark.parametrize("keep", [False, True])
def test_removing_a_member_revokes_their_org_keys_unless_kept(team, acme, keep):
    org, tokens = acme
    admin_id = user_id(team, tokens["admin"])
    key = org_key(team, tokens["admin"], org["id"])["key"]
    removed = team.client.delete(
        f"{ORGS}/{org['id']}/members/{admin_id}", query_string={"keep_api_keys": str(keep).lower()},
        headers=bearer(tokens["owner"]),
    )
    assert removed.status_code == 204
    assert team.get(f"{ORGS}/{org['id']}", tokens["admin"]).status_code == 404
    assert team.client.get(USAGE, headers={"X-API-Key": key}).status_code == (200 if keep else 401)
    assert len(team.get(f"{ORGS}/{org['id']}/api-keys", tokens["owner"]).get_json()) == (1 if keep else 0)


def test_x_org_id_spends_the_named_organizations_quota_for_members_only(app_with, smtp, fake_openai):
    smtp.messages.clear()
    team = Team(app_with(REDIS_URL="", PLAN_QUOTAS="free:110,pro:1000", **smtp.settings), smtp)
    owner = team.person("owner@example.com")
    org = team.org(owner)
    member = team.join(owner, org["id"], "member@example.com")
    as_org = {**bearer(member), "X-Org-Id": str(org["id"])}

    assert team.client.post(CHAT, json={"messages": messages()}, headers=as_org).status_code == 200
    usage = team.client.get(USAGE, headers=as_org).get_json()
    assert usage["used"] > 0
    assert team.get(USAGE, member).get_json()["used"] == 0  # the personal organization's quota
    # A second call would pass the organization's quota (one call reserves 107): for the owner too.
    assert team.client.post(CHAT, json={"messages": messages()}, headers={**bearer(owner), "X-Org-Id": str(org["id"])}).status_code == 429
    assert team.client.post(CHAT, json={"messages": messages()}, headers=bearer(owner)).status_code == 200
    members = team.get(f"{ORGS}/{org['id']}/usage", owner).get_json()["members"]
    assert [(row["email"], row["used"] > 0) for row in members] == [("member@example.com", True)]

    outsider = team.person("outsider@example.com")
    assert team.client.post(CHAT, json={"messages": messages()}, headers={**bearer(outsider), "X-Org-Id": str(org["id"])}).status_code == 404
    for bad in ("", "abc", "1e3", "٣"):
        assert team.client.get(USAGE, headers={**bearer(member), "X-Org-Id": bad}).status_code == 422, bad
    # Past the range of ids: no organization, like any other the caller is not a member of (a
    # driver that binds ids as integers, as psycopg 3 does, made these 500s).
    for beyond in ("2147483648", "549755813889", "999999999999999999"):
        assert team.client.get(USAGE, headers={**bearer(member), "X-Org-Id": beyond}).status_code == 404, beyond
        assert team.client.get(f"{ORGS}/{beyond}", headers=bearer(member)).status_code == 404, beyond


# --- billing on the organization ------------------------------------------------------------


def test_the_organization_pays_and_its_members_get_the_plan(team, acme, fake_stripe):
    org, tokens = acme
    subscribe_org(team, tokens["owner"], org["id"], fake_stripe)
    for role, token in tokens.items():
        body = team.get(f"{ORGS}/{org['id']}/billing/subscription", token).get_json()
        assert (body["plan"], body["status"], body["seats"]) == ("team", "active", None), role
        assert team.get(USAGE, token, headers={"X-Org-Id": str(org["id"])}).get_json()["plan"] == "team"
        # ...but not their personal organization.
        assert team.get("/api/v1/billing/subscription", token).get_json()["plan"] == "free"
    portal = team.get(f"{ORGS}/{org['id']}/billing/portal", tokens["owner"])
    assert portal.status_code == 200
    [customer] = {request.params["customer"] for request in fake_stripe.requests_to("POST", "/v1/billing_portal/sessions")[-1:]}
    assert customer == db.session.get(Organization, org["id"]).stripe_customer_id
    assert customer != team.get("/api/v1/users/me", tokens["owner"]).get_json()["stripe_customer_id"]
    assert {"billing.checkout_started", "billing.portal_opened", "billing.subscription_changed"} <= set(audit_actions(org["id"]))


def test_per_seat_plans_count_the_members_after_concurrent_joins(app_with, smtp, fake_stripe, redis_client):
    smtp.messages.clear()
    team = Team(app_with(REDIS_URL="", STRIPE_SEAT_PLANS="team", **smtp.settings), smtp)
    owner = team.person("owner@example.com")
    org = team.org(owner)
    team.join(owner, org["id"], "first@example.com")
    subscription = subscribe_org(team, owner, org["id"], fake_stripe)
    assert subscription["items"]["data"][0]["quantity"] == 2  # bought for every member
    assert team.get(f"{ORGS}/{org['id']}/billing/subscription", owner).get_json()["seats"] == 2

    joiners = [f"joiner{number}@example.com" for number in range(5)]
    for email in joiners:
        assert team.invite(owner, org["id"], email).status_code == 201
    accepting = iter([(team.person(email), team.invitation_token(email)) for email in joiners])
    # Five people join at once through an app that queues the seat job on Redis, as production.
    queued_app = app_with(STRIPE_SEAT_PLANS="team", **smtp.settings).application

    def accept(client):
        token, invitation_token = next(accepting)
        return client.post(ACCEPT, json={"token": invitation_token}, headers=bearer(token)).status_code

    assert at_once(queued_app, 5, accept) == [200] * 5
    # ...and a member leaves meanwhile.
    first = login(team.client, "first@example.com")["access_token"]
    assert team.client.delete(f"{ORGS}/{org['id']}/members/{user_id(team, first)}", headers=bearer(first)).status_code == 204
    worker = run_rq_worker_burst(STRIPE_SEAT_PLANS="team")
    assert worker.returncode == 0, worker.stderr

    members = len(team.get(f"{ORGS}/{org['id']}/members", owner).get_json())
    assert members == 6
    assert fake_stripe.subscriptions[subscription["id"]]["items"]["data"][0]["quantity"] == 6
    assert team.get(f"{ORGS}/{org['id']}/billing/subscription", owner).get_json()["seats"] == 6
    # No request sent Stripe a number of its own: every quantity update came from the job.
    updates = fake_stripe.requests_to("POST", f"/v1/subscriptions/{subscription['id']}")
    assert updates and all(request.params["items"][0]["quantity"] in {str(n) for n in range(1, 8)} for request in updates)


def test_the_seat_count_is_not_taken_from_the_client(team, acme, fake_stripe, app_with):
    org, tokens = acme
    response = team.client.post(
        f"{ORGS}/{org['id']}/billing/checkout", json={"plan": "team", "quantity": 1}, headers=bearer(tokens["owner"])
    )
    assert response.status_code == 422  # an unknown field is refused, not obeyed


# --- the audit log --------------------------------------------------------------------------


def test_the_audit_log_lists_every_action_newest_first_in_pages(team, acme):
    org, tokens = acme
    for number in range(12):
        team.client.patch(f"{ORGS}/{org['id']}", json={"name": f"Acme {number}"}, headers=bearer(tokens["admin"]))
    first = team.get(f"{ORGS}/{org['id']}/audit-log", tokens["admin"], query_string={"page_size": 5})
    assert first.status_code == 200
    pagination = json.loads(first.headers["X-Pagination"])
    actions = audit_actions(org["id"])
    assert pagination["total"] == len(actions) and pagination["total_pages"] == -(-len(actions) // 5)
    events = first.get_json()
    assert [event["action"] for event in events] == actions[::-1][:5]
    assert events[0]["details"] == {"from": "Acme 10", "to": "Acme 11"}
    assert events[0]["actor_user_id"] == user_id(team, tokens["admin"])
    assert events[0]["ip_address"] == "127.0.0.1"
    second = team.get(f"{ORGS}/{org['id']}/audit-log", tokens["admin"], query_string={"page_size": 5, "page": 2}).get_json()
    assert [event["id"] for event in second] == sorted((event["id"] for event in second), reverse=True)
    assert second[0]["id"] < events[-1]["id"]
    for action in ("org.created", "invitation.created", "member.joined"):
        assert action in actions
    assert team.get(f"{ORGS}/{org['id']}/audit-log", tokens["member"]).status_code == 403


def test_an_action_refused_by_the_database_leaves_no_audit_event(team, acme):
    org, tokens = acme
    before = audit_actions(org["id"])
    assert team.invite(tokens["owner"], org["id"], "member@example.com").status_code == 409
    owner_id = user_id(team, tokens["owner"])
    assert team.client.patch(f"{ORGS}/{org['id']}/members/{owner_id}", json={"role": "member"}, headers=bearer(tokens["owner"])).status_code == 409
    assert audit_actions(org["id"]) == before


def test_the_sweep_repairs_a_seat_count_whose_job_was_lost(app_with, smtp, fake_stripe):
    from saas.sweeps import REPAIRS

    smtp.messages.clear()
    team = Team(app_with(REDIS_URL="", STRIPE_SEAT_PLANS="team", **smtp.settings), smtp)
    owner = team.person("owner@example.com")
    org = team.org(owner)
    subscription = subscribe_org(team, owner, org["id"], fake_stripe)
    lost = team.person("lost@example.com")  # joins as if by a request whose seat job Redis lost
    db.session.add(Membership(org_id=org["id"], user_id=user_id(team, lost), role="member"))
    db.session.commit()
    assert fake_stripe.subscriptions[subscription["id"]]["items"]["data"][0]["quantity"] == 1

    assert REPAIRS["seat_counts"]() == {"synced": 1, "failed": 0}
    assert fake_stripe.subscriptions[subscription["id"]]["items"]["data"][0]["quantity"] == 2
    assert REPAIRS["seat_counts"]() == {"synced": 0, "failed": 0}  # nothing left to repair


def test_webhooks_find_the_organization_by_its_customer(team, acme, fake_stripe):
    org, tokens = acme
    assert team.get(f"{ORGS}/{org['id']}/billing/portal", tokens["owner"]).status_code == 200  # creates its customer
    db.session.expire_all()
    customer = db.session.get(Organization, org["id"]).stripe_customer_id
    subscription = fake_stripe.add_subscription(customer, "price_pro")  # made in the dashboard: no metadata
    deliver_ok(team.client, make_event("customer.subscription.created", subscription))
    assert team.get(f"{ORGS}/{org['id']}/billing/subscription", tokens["member"]).get_json()["plan"] == "pro"
    assert team.get("/api/v1/billing/subscription", tokens["owner"]).get_json()["plan"] == "free"


def test_flask_billing_sync_seats_recounts_every_per_seat_organization(app_with, smtp, fake_stripe):
    smtp.messages.clear()
    team = Team(app_with(REDIS_URL="", STRIPE_SEAT_PLANS="team", **smtp.settings), smtp)
    owner = team.person("owner@example.com")
    org = team.org(owner)
    subscription = subscribe_org(team, owner, org["id"], fake_stripe)
    fake_stripe.update_subscription(subscription["id"], quantity=9)  # changed by hand in the dashboard
    result = team.client.application.test_cli_runner().invoke(args=["billing", "sync-seats"])
    assert result.exit_code == 0, result.output
    assert fake_stripe.subscriptions[subscription["id"]]["items"]["data"][0]["quantity"] == 1


def test_a_browser_front_end_may_send_x_org_id_and_read_x_pagination(team, acme):
    org, tokens = acme
    origin = {"Origin": "http://localhost:3000"}
    preflight = team.client.options(
        USAGE, headers={**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "Authorization, X-Org-Id"}
    )
    assert "x-org-id" in preflight.headers["Access-Control-Allow-Headers"].lower()
    page = team.get(f"{ORGS}/{org['id']}/audit-log", tokens["admin"], headers=origin)
    assert "X-Pagination" in page.headers["Access-Control-Expose-Headers"]


# --- what a review found, tried again -------------------------------------------------------


def test_a_role_taken_away_after_the_gate_let_the_caller_in_counts(team, acme):
    """The gate reads the caller's role before the organization's lock; the service reads it
    again under the lock, so a request queued behind the change that demoted its caller is
    refused (here: the service called as such a request would call it)."""
    from saas.orgs import service

    org, tokens = acme
    base = f"{ORGS}/{org['id']}"
    owner_id, admin_id, member_id = (user_id(team, tokens[role]) for role in ("owner", "admin", "member"))
    team.client.patch(f"{base}/members/{admin_id}", json={"role": "owner"}, headers=bearer(tokens["owner"]))
    team.client.patch(f"{base}/members/{admin_id}", json={"role": "member"}, headers=bearer(tokens["owner"]))
    organization = db.session.get(Organization, org["id"])
    with pytest.raises(service.RoleNotPermitted):
        service.change_role(organization, admin_id, admin_id, "owner")
    with pytest.raises(service.RoleNotPermitted):
        service.remove_member(organization, admin_id, member_id)
    with pytest.raises(service.RoleNotPermitted):
        service.delete_org(organization, admin_id)
    db.session.expire_all()
    roles = {m.user_id: m.role for m in db.session.scalars(sa.select(Membership).where(Membership.org_id == org["id"]))}
    assert roles == {owner_id: "owner", admin_id: "member", member_id: "member"}


def test_someone_leaving_cannot_keep_their_own_keys(team, acme):
    org, tokens = acme
    key = org_key(team, tokens["admin"], org["id"])["key"]
    admin_id = user_id(team, tokens["admin"])
    left = team.client.delete(f"{ORGS}/{org['id']}/members/{admin_id}", query_string={"keep_api_keys": "true"},
                              headers=bearer(tokens["admin"]))
    assert left.status_code == 204
    assert team.client.get(USAGE, headers={"X-API-Key": key}).status_code == 401


def test_a_team_cannot_take_the_slug_of_a_future_personal_organization(team):
    founder = team.person("founder@example.com")
    next_id = user_id(team, founder) + 1
    squatter = team.org(founder, f"personal-{next_id}")
    assert not squatter["slug"].startswith("personal-")
    team.person("next@example.com")  # registers: its personal organization gets its slug
    assert db.session.scalar(sa.select(Organization.slug).where(Organization.personal_owner_id == next_id)) == f"personal-{next_id}"


def test_an_invitation_lapses_when_its_sender_can_no_longer_invite(team, acme):
    org, tokens = acme
    base = f"{ORGS}/{org['id']}"
    assert team.invite(tokens["admin"], org["id"], "friend@example.com", "admin").status_code == 201
    assert team.invite(tokens["owner"], org["id"], "boss@example.com", "owner").status_code == 201
    admin_id, owner_id = user_id(team, tokens["admin"]), user_id(team, tokens["owner"])
    team.client.patch(f"{base}/members/{admin_id}", json={"role": "member"}, headers=bearer(tokens["owner"]))
    team.client.patch(f"{base}/members/{admin_id}", json={"role": "owner"}, headers=bearer(tokens["owner"]))
    team.client.patch(f"{base}/members/{owner_id}", json={"role": "admin"}, headers=bearer(tokens["admin"]))
    # The first inviter is an owner again, so theirs holds; the second is only an admin now.
    friend, boss = team.person("friend@example.com"), team.person("boss@example.com")
    assert team.client.post(ACCEPT, json={"token": team.invitation_token("friend@example.com")}, headers=bearer(friend)).status_code == 200
    lapsed = team.client.post(ACCEPT, json={"token": team.invitation_token("boss@example.com")}, headers=bearer(boss))
    assert lapsed.status_code == 400 and "lapsed" in lapsed.get_json()["message"]
    assert team.get(base, boss).status_code == 404


def test_an_org_key_sees_only_the_jobs_of_its_organization(team, acme, fake_openai):
    org, tokens = acme
    key = org_key(team, tokens["admin"], org["id"])["key"]
    personal_job = team.client.post("/api/v1/ai/jobs", json={"messages": messages()}, headers=bearer(tokens["admin"])).get_json()
    org_job = team.client.post("/api/v1/ai/jobs", json={"messages": messages()}, headers={"X-API-Key": key}).get_json()
    assert team.client.get(f"/api/v1/ai/jobs/{org_job['id']}", headers={"X-API-Key": key}).status_code == 200
    assert team.client.get(f"/api/v1/ai/jobs/{personal_job['id']}", headers={"X-API-Key": key}).status_code == 404
    assert team.get(f"/api/v1/ai/jobs/{personal_job['id']}", tokens["admin"]).status_code == 200


def test_a_fresh_server_process_serves_the_gate_first(database, app):
    """The gate builds the caller's user and personal organization without the ORM constructor;
    a gunicorn worker whose first requests are authenticated ones must answer them (the mappers
    are configured when the app is built, not by the first constructor call)."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from tests.servers import gunicorn

    with app.app_context():  # the account is made in this process, not by the server
        client = app.test_client()
        register(client, "first@example.com")
        token = login(client, "first@example.com")["access_token"]
    with gunicorn(GUNICORN_WORKERS="1", GUNICORN_THREADS="8") as server:
        def me(_):
            return requests.get(f"{server}/api/v1/users/me", headers=bearer(token), timeout=10).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(me, range(32))) == {200}
