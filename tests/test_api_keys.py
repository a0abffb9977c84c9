"""API keys: shown once, stored as a hash, accepted where an access token is, owner only."""
import hashlib
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from saas.apikeys.models import ApiKey
from saas.extensions import db
from saas.users.models import User
from saas.users.service import set_user_active
from tests.ai_support import API_KEYS, create_api_key
from tests.helpers import PASSWORD, at_once, bearer, login, register, sign_up
from tests.org_support import Team

ME = "/api/v1/users/me"


def test_a_new_key_is_shown_once_with_a_recognisable_prefix(client, tokens):
    response = client.post(API_KEYS, json={"name": "ci"}, headers=bearer(tokens["access_token"]))
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    created = response.get_json()
    assert set(created) == {"id", "name", "prefix", "key", "created_at", "last_used_at", "expires_at", "created_by"}
    key = created["key"]
    assert key.startswith("sk_") and key.startswith(created["prefix"] + "_")
    secret = key[len(created["prefix"]) + 1:]
    assert len(secret) >= 43  # 32 random bytes, base64url

    listed = client.get(API_KEYS, headers=bearer(tokens["access_token"])).get_json()
    assert listed == [{name: value for name, value in created.items() if name != "key"}]


def test_only_the_hash_of_a_key_is_stored(client, tokens):
    key = create_api_key(client, tokens["access_token"])["key"]
    row = db.session.scalar(sa.select(ApiKey))
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = db.session.execute(sa.text("SELECT * FROM api_keys")).one()
    assert key not in " ".join(str(value) for value in stored)


def test_a_key_works_as_bearer_and_as_x_api_key(client, tokens, user):
    key = create_api_key(client, tokens["access_token"])["key"]
    for headers in (bearer(key), {"X-API-Key": key}):
        response = client.get(ME, headers=headers)
        assert response.status_code == 200
        assert response.get_json()["id"] == user["id"]


def test_using_a_key_records_when_it_was_last_used(client, tokens):
    created = create_api_key(client, tokens["access_token"])
    client.get(ME, headers={"X-API-Key": created["key"]})
    listed = client.get(API_KEYS, headers=bearer(tokens["access_token"])).get_json()
    last_used = datetime.fromisoformat(listed[0]["last_used_at"])
    assert datetime.now(timezone.utc) - last_used < timedelta(minutes=1)


def test_a_revoked_key_stops_working_at_once(client, tokens):
    created = create_api_key(client, tokens["access_token"])
    assert client.get(ME, headers=bearer(created["key"])).status_code == 200

    revoked = client.delete(f"{API_KEYS}/{created['id']}", headers=bearer(tokens["access_token"]))
    assert revoked.status_code == 204

    refused = client.get(ME, headers=bearer(created["key"]))
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert refused.get_json()["code"] == 401
    assert client.get(API_KEYS, headers=bearer(tokens["access_token"])).get_json() == []


def test_a_password_change_revokes_every_key(client, tokens):
    key = create_api_key(client, tokens["access_token"])["key"]
    changed = client.patch(
        ME,
        json={"password": "a brand new passphrase", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200
    assert client.get(ME, headers={"X-API-Key": key}).status_code == 401
    assert client.get(API_KEYS, headers=bearer(tokens["access_token"])).get_json() == []


def test_another_users_key_is_a_404_and_stays_valid(client, tokens):
    owners_key = create_api_key(client, tokens["access_token"], name="owner's")
    intruder = sign_up(client, "intruder@example.com")

    assert client.delete(f"{API_KEYS}/{owners_key['id']}", headers=bearer(intruder)).status_code == 404
    assert client.delete(f"{API_KEYS}/999999", headers=bearer(intruder)).status_code == 404
    assert client.get(API_KEYS, headers=bearer(intruder)).get_json() == []
    assert client.get(ME, headers=bearer(owners_key["key"])).status_code == 200


def test_a_wrong_secret_behind_a_real_prefix_is_refused(client, tokens):
    key = create_api_key(client, tokens["access_token"])["key"]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    for headers in (bearer(forged), {"X-API-Key": forged}, {"X-API-Key": key[:15]}, {"X-API-Key": "sk_nope"}):
        response = client.get(ME, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_an_expired_key_is_refused(client, tokens):
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    created = create_api_key(client, tokens["access_token"], expires_at=soon.isoformat())
    assert datetime.fromisoformat(created["expires_at"]) == soon
    assert client.get(ME, headers=bearer(created["key"])).status_code == 200

    db.session.execute(
        sa.update(ApiKey).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    )
    db.session.commit()
    assert client.get(ME, headers=bearer(created["key"])).status_code == 401


def test_expiry_must_be_in_the_future_and_unknown_fields_are_refused(client, tokens):
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    for body in ({"name": "x", "expires_at": past}, {"name": "x", "scopes": ["all"]}, {"name": ""}, {"name": "a\x00"}, {}):
        response = client.post(API_KEYS, json=body, headers=bearer(tokens["access_token"]))
        assert response.status_code == 422, body


def test_the_key_of_a_disabled_account_is_refused(client, tokens, user):
    key = create_api_key(client, tokens["access_token"])["key"]
    set_user_active(db.session.get(User, user["id"]), False)
    assert client.get(ME, headers=bearer(key)).status_code == 401


def test_key_management_and_account_changes_need_a_login_session(client, tokens):
    created = create_api_key(client, tokens["access_token"])
    for headers in (bearer(created["key"]), {"X-API-Key": created["key"]}):
        assert client.post(API_KEYS, json={"name": "more"}, headers=headers).status_code == 401
        assert client.get(API_KEYS, headers=headers).status_code == 401
        assert client.delete(f"{API_KEYS}/{created['id']}", headers=headers).status_code == 401
        assert client.patch(ME, json={"full_name": "Mallory"}, headers=headers).status_code == 401
        assert client.post("/api/v1/auth/logout", headers=headers).status_code == 401
    assert client.get(ME, headers=bearer(created["key"])).get_json()["full_name"] is None


def test_an_access_token_still_wins_when_no_key_is_sent(client):
    token = sign_up(client, "plain@example.com")
    assert client.get(ME, headers=bearer(token)).status_code == 200
    assert client.get(ME).status_code == 401


def test_openapi_declares_the_api_key_scheme_where_keys_are_accepted(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    session = [{"BearerAuth": []}, {"OAuth2PasswordBearer": []}]
    assert spec["paths"]["/api/v1/users/me"]["get"]["security"] == [*session, {"ApiKeyAuth": []}]
    assert spec["paths"]["/api/v1/api-keys"]["post"]["security"] == session


def test_deactivating_an_account_revokes_its_keys_for_good(client, tokens, user):
    key = create_api_key(client, tokens["access_token"])["key"]
    set_user_active(db.session.get(User, user["id"]), False)
    set_user_active(db.session.get(User, user["id"]), True)
    assert client.get(ME, headers=bearer(key)).status_code == 401
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey)) == 0


def test_logout_all_ends_sessions_but_leaves_api_keys(client, tokens):
    """Keys are separate credentials for scripts: logging out everywhere does not break them
    (revoke them at /api-keys, or change the password, which revokes every key)."""
    key = create_api_key(client, tokens["access_token"])["key"]
    assert client.post("/api/v1/auth/logout-all", headers=bearer(tokens["access_token"])).status_code == 204
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 401
    assert client.get(ME, headers=bearer(key)).status_code == 200


# --- how many (API_KEYS_MAX) ----------------------------------------------------------------


def key_count():
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(ApiKey))


def test_the_26th_key_of_an_owner_is_a_409_and_nothing_is_stored(client, tokens):
    access = tokens["access_token"]
    for number in range(25):
        create_api_key(client, access, name=f"key {number}")
    refused = client.post(API_KEYS, json={"name": "one too many"}, headers=bearer(access))
    assert refused.status_code == 409
    body = refused.get_json()
    assert (body["code"], body["status"], body["errors"]) == (409, "Conflict", {"reason": ["too_many_api_keys"]})
    assert "25" in body["message"]
    assert key_count() == 25
    # Revoking one makes room for one.
    oldest = client.get(API_KEYS, headers=bearer(access)).get_json()[-1]
    assert client.delete(f"{API_KEYS}/{oldest['id']}", headers=bearer(access)).status_code == 204
    create_api_key(client, access, name="a replacement")
    assert client.post(API_KEYS, json={"name": "again"}, headers=bearer(access)).status_code == 409


def test_the_cap_counts_an_organizations_keys_whoever_made_them(app_with, smtp):
    team = Team(app_with(REDIS_URL="", API_KEYS_MAX="3", **smtp.settings), smtp)
    client, owner = team.client, team.person("owner@example.com")
    org = team.org(owner)
    admin = team.join(owner, org["id"], "admin@example.com", "admin")
    org_keys = f"/api/v1/orgs/{org['id']}/api-keys"
    for token in (owner, owner, admin):
        create_api_key_at(client, org_keys, token)
    refused = client.post(org_keys, json={"name": "fourth"}, headers=bearer(admin))
    assert refused.status_code == 409 and "organization" in refused.get_json()["message"]
    # The cap is the organization's: the admin's personal keys are counted apart.
    create_api_key(client, admin)


def test_the_cap_counts_the_keys_one_user_made_across_their_organizations(app_with):
    """A user cannot get past the cap by making more teams."""
    client = app_with(API_KEYS_MAX="3")
    token = sign_up(client)
    create_api_key(client, token)
    for name in ("One", "Two"):
        org = client.post("/api/v1/orgs", json={"name": name}, headers=bearer(token)).get_json()
        create_api_key_at(client, f"/api/v1/orgs/{org['id']}/api-keys", token)
    third = client.post("/api/v1/orgs", json={"name": "Three"}, headers=bearer(token)).get_json()
    refused = client.post(f"/api/v1/orgs/{third['id']}/api-keys", json={"name": "k"}, headers=bearer(token))
    assert refused.status_code == 409 and "you" in refused.get_json()["message"].lower()
    assert client.post(API_KEYS, json={"name": "k"}, headers=bearer(token)).status_code == 409
    assert key_count() == 3


def test_concurrent_key_creations_stop_at_the_cap(app_with):
    client = app_with(API_KEYS_MAX="3")
    token = sign_up(client)
    statuses = at_once(client.application, 8, lambda each: each.post(
        API_KEYS, json={"name": "racing"}, headers=bearer(token)).status_code)
    assert sorted(statuses) == [201] * 3 + [409] * 5
    assert key_count() == 3


def create_api_key_at(client, path, token):
    response = client.post(path, json={"name": "org key"}, headers=bearer(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()

