"""Attacks on tokens: every token problem is a 401 with a Bearer challenge, in the JSON envelope."""
import base64
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest
import sqlalchemy as sa

from saas.auth.models import AuthSession
from saas.extensions import db
from tests.conftest import TEST_SECRET, make_app
from tests.helpers import PASSWORD, bearer, register

ME = "/api/v1/users/me"
REFRESH = "/api/v1/auth/refresh"


def assert_token_rejected(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.get_json()
    assert body["code"] == 401
    assert body["status"] == "Unauthorized"
    assert body["message"]


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def signed(claims, key=TEST_SECRET, algorithm="HS256"):
    return jwt.encode(claims, key, algorithm=algorithm)


def b64url(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(claims):
    """A token that claims ``alg: none`` and carries no signature, built by hand."""
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."


def in_the_past():
    return int((datetime.now(timezone.utc) - timedelta(minutes=5)).timestamp())


# Malformed or missing Authorization


def test_missing_authorization_header_is_401(client):
    assert_token_rejected(client.get(ME))


def test_bearer_without_a_token_is_401(client):
    assert_token_rejected(client.get(ME, headers={"Authorization": "Bearer"}))


def test_bearer_with_only_a_space_is_401(client):
    assert_token_rejected(client.get(ME, headers={"Authorization": "Bearer "}))


def test_basic_authorization_is_401(client, user):
    credentials = base64.b64encode(b"user@example.com:password").decode()
    assert_token_rejected(client.get(ME, headers={"Authorization": f"Basic {credentials}"}))


def test_garbage_token_is_401(client):
    assert_token_rejected(client.get(ME, headers=bearer("not-a-jwt")))


def test_token_with_three_garbage_segments_is_401(client):
    assert_token_rejected(client.get(ME, headers=bearer("a.b.c")))


def test_token_with_extra_words_is_401(client, tokens):
    assert_token_rejected(client.get(ME, headers={"Authorization": f"Bearer {tokens['access_token']} x"}))


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(client, tokens, scheme):
    # OAuth2 clients send the login's token_type, "bearer", as the scheme.
    response = client.get(ME, headers={"Authorization": f"{scheme} {tokens['access_token']}"})
    assert response.status_code == 200


def test_another_scheme_with_a_valid_token_is_401(client, tokens):
    assert_token_rejected(client.get(ME, headers={"Authorization": f"JWT {tokens['access_token']}"}))


# Forged signatures and algorithms


def test_alg_none_access_token_is_401(client, tokens):
    forged = unsigned(claims_of(tokens["access_token"]))
    assert_token_rejected(client.get(ME, headers=bearer(forged)))


def test_alg_none_refresh_token_is_401(client, tokens):
    forged = unsigned(claims_of(tokens["refresh_token"]))
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": forged}))


def test_token_signed_with_another_key_is_401(client, tokens):
    forged = signed(claims_of(tokens["access_token"]), key="another-secret-key-of-sufficient-length-42")
    assert_token_rejected(client.get(ME, headers=bearer(forged)))


def test_refresh_token_signed_with_another_key_is_401(client, tokens):
    forged = signed(claims_of(tokens["refresh_token"]), key="another-secret-key-of-sufficient-length-42")
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": forged}))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_hs512_token_signed_with_the_right_key_is_401(client, tokens):
    forged = signed(claims_of(tokens["access_token"]), algorithm="HS512")
    assert_token_rejected(client.get(ME, headers=bearer(forged)))


def test_tampered_payload_with_another_subject_is_401(client, user, tokens):
    header, payload, signature = tokens["access_token"].split(".")
    claims = claims_of(tokens["access_token"])
    claims["sub"] = str(user["id"] + 1)
    tampered = f"{header}.{b64url(claims)}.{signature}"
    assert_token_rejected(client.get(ME, headers=bearer(tampered)))


def test_signature_of_another_token_is_401(client, tokens):
    header, payload, _ = tokens["access_token"].split(".")
    _, _, foreign_signature = tokens["refresh_token"].split(".")
    assert_token_rejected(client.get(ME, headers=bearer(f"{header}.{payload}.{foreign_signature}")))


# Correctly signed tokens that must still be refused


def test_expired_access_token_is_401(client, tokens):
    claims = {**claims_of(tokens["access_token"]), "exp": in_the_past()}
    assert_token_rejected(client.get(ME, headers=bearer(signed(claims))))


def test_expired_refresh_token_is_401(client, tokens):
    claims = {**claims_of(tokens["refresh_token"]), "exp": in_the_past()}
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": signed(claims)}))


def test_access_token_without_a_session_id_is_401(client, tokens):
    claims = claims_of(tokens["access_token"])
    del claims["sid"]
    assert_token_rejected(client.get(ME, headers=bearer(signed(claims))))


def test_refresh_token_without_a_session_id_is_401(client, tokens):
    claims = claims_of(tokens["refresh_token"])
    del claims["sid"]
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": signed(claims)}))


def test_access_token_with_an_unknown_session_id_is_401(client, tokens):
    claims = {**claims_of(tokens["access_token"]), "sid": "00000000-0000-0000-0000-000000000000"}
    assert_token_rejected(client.get(ME, headers=bearer(signed(claims))))


def test_access_token_moved_to_another_users_session_is_401(client, tokens):
    from tests.conftest import login, register

    register(client, email="victim@example.com")
    victim = login(client, email="victim@example.com")
    claims = {**claims_of(tokens["access_token"]), "sid": claims_of(victim["access_token"])["sid"]}
    assert_token_rejected(client.get(ME, headers=bearer(signed(claims))))


@pytest.mark.parametrize("sub", ["not-a-number", "99999999999999999999", "-1", ""])
def test_access_token_with_a_malformed_subject_is_401(client, tokens, sub):
    claims = {**claims_of(tokens["access_token"]), "sub": sub}
    assert_token_rejected(client.get(ME, headers=bearer(signed(claims))))


@pytest.mark.parametrize("sid", [12345, ["a"], {"a": 1}, None, "x" * 100])
def test_access_token_with_a_malformed_session_id_is_401(client, tokens, sid):
    claims = {**claims_of(tokens["access_token"]), "sid": sid}
    assert_token_rejected(client.get(ME, headers=bearer(signed(claims))))


@pytest.mark.parametrize("sid", [12345, ["a"], {"a": 1}, None, "x" * 100])
def test_refresh_token_with_a_malformed_session_id_is_401(client, tokens, sid):
    claims = {**claims_of(tokens["refresh_token"]), "sid": sid}
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": signed(claims)}))


@pytest.mark.parametrize("jti", [12345, None, ["a"]])
def test_refresh_token_with_a_malformed_jti_is_401(client, tokens, jti):
    claims = {**claims_of(tokens["refresh_token"]), "jti": jti}
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": signed(claims)}))


def test_token_of_a_deleted_user_is_401(client, user, tokens):
    from saas.extensions import db
    from saas.users.models import User

    db.session.execute(sa.delete(User).where(User.id == user["id"]))
    db.session.commit()
    assert_token_rejected(client.get(ME, headers=bearer(tokens["access_token"])))


def test_refresh_token_of_a_deleted_user_is_401(client, user, tokens):
    from saas.extensions import db
    from saas.users.models import User

    db.session.execute(sa.delete(User).where(User.id == user["id"]))
    db.session.commit()
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}))


def test_access_token_of_a_user_deactivated_in_the_database_is_401(client, user, tokens):
    from saas.extensions import db
    from saas.users.models import User

    # Deactivated behind the service's back: the sessions are still open, the user is not.
    db.session.get(User, user["id"]).is_active = False
    db.session.commit()
    assert_token_rejected(client.get(ME, headers=bearer(tokens["access_token"])))


# Wrong token type, revoked token


def test_refresh_token_on_an_access_endpoint_is_401(client, tokens):
    assert_token_rejected(client.get(ME, headers=bearer(tokens["refresh_token"])))


def test_access_token_on_the_refresh_endpoint_is_401(client, tokens):
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": tokens["access_token"]}))


def test_access_token_relabelled_as_refresh_is_401(client, tokens):
    # Correctly signed, type changed: the access token's jti is not the session's refresh jti.
    claims = {**claims_of(tokens["access_token"]), "type": "refresh"}
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": signed(claims)}))


def test_revoked_access_token_is_401(client, tokens):
    client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert_token_rejected(client.get(ME, headers=bearer(tokens["access_token"])))


def test_revoked_refresh_token_is_401(client, tokens):
    client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    assert_token_rejected(client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}))


def test_a_valid_token_is_accepted(client, tokens):
    # The control for every test above: the same client and token shape do get through.
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 200


# Production refuses unsafe secrets


def test_production_refuses_to_start_without_secret_key():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        make_app(APP_ENV="production", SECRET_KEY="")


def test_production_refuses_a_secret_key_shorter_than_32_bytes():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        make_app(APP_ENV="production", SECRET_KEY="x" * 31)


def test_production_counts_the_secret_key_in_bytes_not_characters():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        make_app(APP_ENV="production", SECRET_KEY="é" * 15)  # 15 characters, 30 bytes


def test_production_refuses_to_start_with_debug_on():
    with pytest.raises(RuntimeError, match="DEBUG"):
        make_app(APP_ENV="production", SECRET_KEY="x" * 32, DEBUG="true")


def test_production_starts_with_a_32_byte_secret_key_and_debug_off():
    app = make_app(APP_ENV="production", SECRET_KEY="x" * 32, DEBUG="false")
    assert app.config["JWT_SECRET_KEY"] == "x" * 32
    assert app.config["JWT_ALGORITHM"] == "HS256"


def test_an_access_token_dies_with_its_sessions_expiry(client, user, tokens):
    """The session (the refresh token's lifetime) bounds every token of the login, even an access
    token that has not expired itself."""
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 200
    db.session.execute(
        sa.update(AuthSession).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    )
    db.session.commit()
    assert_token_rejected(client.get(ME, headers=bearer(tokens["access_token"])))


def test_a_forwarded_address_longer_than_any_address_is_stored_cut_not_a_500(database):
    client = make_app(PROXY_FIX_HOPS="1").test_client()
    register(client)
    response = client.post(
        "/api/v1/auth/login", json={"email": "user@example.com", "password": PASSWORD},
        headers={"X-Forwarded-For": "x" * 300},
    )
    assert response.status_code == 200
