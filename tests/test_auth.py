"""Registration, login, refresh rotation and logout."""

import pytest

from tests.helpers import PASSWORD, assert_no_password_or_hash, at_once, bearer, login, register, sign_up

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
LOGOUT_ALL = "/api/v1/auth/logout-all"
ME = "/api/v1/users/me"

USER_FIELDS = {
    "id",
    "email",
    "full_name",
    "is_active",
    "is_superuser",
    "stripe_customer_id",
    "created_at",
    "updated_at",
}


def refresh(client, refresh_token):
    return client.post(REFRESH, json={"refresh_token": refresh_token})


# Registration


def test_register_returns_201_and_the_user(client):
    response = client.post(
        REGISTER, json={"email": "ada@example.com", "password": PASSWORD, "full_name": "Ada Lovelace"}
    )
    assert response.status_code == 201
    body = response.get_json()
    assert USER_FIELDS <= set(body)
    assert body["email"] == "ada@example.com"
    assert body["full_name"] == "Ada Lovelace"
    assert body["is_active"] is True
    assert body["is_superuser"] is False
    assert isinstance(body["id"], int)
    assert body["created_at"]


def test_register_never_returns_the_password_or_its_hash(client):
    response = client.post(REGISTER, json={"email": "ada@example.com", "password": PASSWORD})
    text = response.get_data(as_text=True)
    assert_no_password_or_hash(response.get_json())
    assert PASSWORD not in text
    assert "$2b$" not in text


def test_register_without_full_name_stores_null(client):
    assert register(client)["full_name"] is None


def test_register_trims_and_lower_cases_the_email(client):
    assert register(client, email="  Ada.Lovelace@Example.COM ")["email"] == "ada.lovelace@example.com"


def test_a_registered_email_can_log_in_in_any_case(client):
    register(client, email="ada@example.com")
    assert login(client, email="ADA@Example.com")["token_type"] == "bearer"


def test_register_with_a_taken_email_is_409(client, user):
    response = client.post(REGISTER, json={"email": user["email"], "password": PASSWORD})
    assert response.status_code == 409
    assert response.get_json()["code"] == 409


def test_register_with_a_taken_email_in_another_case_is_409(client, user):
    response = client.post(REGISTER, json={"email": user["email"].upper(), "password": PASSWORD})
    assert response.status_code == 409


@pytest.mark.parametrize("missing", ["email", "password"])
def test_register_without_a_required_field_is_422(client, missing):
    body = {"email": "ada@example.com", "password": PASSWORD}
    del body[missing]
    response = client.post(REGISTER, json=body)
    assert response.status_code == 422
    assert missing in response.get_json()["errors"]["json"]


@pytest.mark.parametrize("field", ["is_superuser", "is_active", "stripe_customer_id", "id"])
def test_register_with_an_unknown_field_is_422(client, field):
    response = client.post(
        REGISTER, json={"email": "ada@example.com", "password": PASSWORD, field: True}
    )
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


@pytest.mark.parametrize(
    "field, value",
    [("email", 42), ("email", ["a@example.com"]), ("password", 12345678), ("full_name", {"a": 1})],
)
def test_register_with_a_wrongly_typed_field_is_422(client, field, value):
    body = {"email": "ada@example.com", "password": PASSWORD, field: value}
    response = client.post(REGISTER, json=body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]


def test_register_with_an_invalid_email_is_422(client):
    response = client.post(REGISTER, json={"email": "not-an-email", "password": PASSWORD})
    assert response.status_code == 422


def test_register_with_malformed_json_is_a_json_400(client):
    response = client.post(REGISTER, data='{"email": "ada@example.com",', content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["code"] == 400


def test_register_with_a_json_array_body_is_422(client):
    response = client.post(REGISTER, json=["ada@example.com", PASSWORD])
    assert response.status_code == 422


def test_password_shorter_than_8_characters_is_422(client):
    response = client.post(REGISTER, json={"email": "ada@example.com", "password": "x" * 7})
    assert response.status_code == 422
    assert "password" in response.get_json()["errors"]["json"]


def test_password_of_exactly_8_characters_is_accepted(client):
    register(client, password="k3-q9!zv")


def test_password_longer_than_1024_characters_is_422(client):
    response = client.post(REGISTER, json={"email": "ada@example.com", "password": "x" * 1025})
    assert response.status_code == 422


@pytest.mark.parametrize("length", [100, 1024])
def test_a_long_password_registers_and_logs_in(client, length):
    password = "p" * length
    register(client, password=password)
    assert login(client, password=password)["access_token"]


def test_a_1024_character_multibyte_password_registers_and_logs_in(client):
    password = "é" * 1024  # 2048 bytes in UTF-8
    register(client, password=password)
    assert login(client, password=password)["access_token"]


def test_passwords_sharing_the_first_72_bytes_are_not_interchangeable(client):
    # bcrypt alone reads only 72 bytes: without pre-hashing these two would be equal.
    register(client, password="a" * 72 + "-first")
    response = client.post(LOGIN, json={"email": "user@example.com", "password": "a" * 72 + "-other"})
    assert response.status_code == 401


# Login


def test_login_with_json_returns_a_bearer_token_pair(client, user):
    response = client.post(LOGIN, json={"email": user["email"], "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["access_token"] != body["refresh_token"]


def test_login_expires_in_is_1800_seconds_by_default(client, user):
    assert login(client)["expires_in"] == 1800


def test_login_response_must_not_be_cached(client, user):
    response = client.post(LOGIN, json={"email": user["email"], "password": PASSWORD})
    assert response.headers["Cache-Control"] == "no-store"


def test_login_with_the_oauth2_password_form(client, user):
    response = client.post(
        LOGIN,
        data={"username": user["email"], "password": PASSWORD, "grant_type": "password", "scope": ""},
    )
    assert response.status_code == 200
    assert response.get_json()["token_type"] == "bearer"


def test_login_with_the_oauth2_form_and_a_wrong_password_is_401(client, user):
    response = client.post(LOGIN, data={"username": user["email"], "password": "wrong password"})
    assert response.status_code == 401


def test_login_form_with_another_grant_type_is_422(client, user):
    response = client.post(
        LOGIN, data={"username": user["email"], "password": PASSWORD, "grant_type": "client_credentials"}
    )
    assert response.status_code == 422


def test_login_with_an_unknown_field_is_422(client, user):
    response = client.post(LOGIN, json={"email": user["email"], "password": PASSWORD, "remember": True})
    assert response.status_code == 422


def test_login_without_a_password_is_422(client, user):
    assert client.post(LOGIN, json={"email": user["email"]}).status_code == 422


def test_login_with_a_wrong_password_is_401_with_a_bearer_challenge(client, user):
    response = client.post(LOGIN, json={"email": user["email"], "password": "wrong password"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_json()["code"] == 401


def test_unknown_email_and_wrong_password_get_the_identical_401(client, user):
    wrong_password = client.post(LOGIN, json={"email": user["email"], "password": "wrong password"})
    unknown_email = client.post(LOGIN, json={"email": "nobody@example.com", "password": "wrong password"})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.get_json() == unknown_email.get_json()
    assert wrong_password.headers["WWW-Authenticate"] == unknown_email.headers["WWW-Authenticate"]


def test_an_inactive_user_cannot_log_in(client, user):
    from saas.extensions import db
    from saas.users.models import User

    db.session.get(User, user["id"]).is_active = False
    db.session.commit()
    response = client.post(LOGIN, json={"email": user["email"], "password": PASSWORD})
    assert response.status_code == 401


def test_each_login_opens_a_separate_session(client, user):
    first, second = login(client), login(client)
    client.post(LOGOUT, headers=bearer(first["access_token"]))
    assert client.get(ME, headers=bearer(second["access_token"])).status_code == 200


# Refresh


def test_refresh_with_the_token_in_the_body_returns_a_new_pair(client, tokens):
    response = refresh(client, tokens["refresh_token"])
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "bearer"
    assert body["refresh_token"] != tokens["refresh_token"]
    assert client.get(ME, headers=bearer(body["access_token"])).status_code == 200


def test_refresh_with_the_token_in_the_authorization_header(client, tokens):
    response = client.post(REFRESH, headers=bearer(tokens["refresh_token"]))
    assert response.status_code == 200
    assert response.get_json()["refresh_token"] != tokens["refresh_token"]


def test_refresh_response_must_not_be_cached(client, tokens):
    assert refresh(client, tokens["refresh_token"]).headers["Cache-Control"] == "no-store"


def test_refresh_without_any_token_is_401(client):
    response = client.post(REFRESH, json={})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_refresh_with_an_unknown_field_is_422(client, tokens):
    response = client.post(REFRESH, json={"refresh_token": tokens["refresh_token"], "extra": 1})
    assert response.status_code == 422


def test_the_rotated_pair_can_be_refreshed_again(client, tokens):
    second = refresh(client, tokens["refresh_token"]).get_json()
    assert refresh(client, second["refresh_token"]).status_code == 200


def test_reusing_a_retired_refresh_token_is_401(client, tokens):
    refresh(client, tokens["refresh_token"])
    response = refresh(client, tokens["refresh_token"])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_reusing_a_retired_refresh_token_revokes_the_pair_it_was_rotated_into(client, tokens):
    rotated = refresh(client, tokens["refresh_token"]).get_json()
    refresh(client, tokens["refresh_token"])  # the replay: a thief, or the victim after the thief
    assert refresh(client, rotated["refresh_token"]).status_code == 401
    assert client.get(ME, headers=bearer(rotated["access_token"])).status_code == 401


def test_reusing_a_retired_refresh_token_revokes_the_original_access_token(client, tokens):
    refresh(client, tokens["refresh_token"])
    refresh(client, tokens["refresh_token"])
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 401


def test_reuse_in_one_session_leaves_the_users_other_sessions_alone(client, tokens):
    other = login(client)
    refresh(client, tokens["refresh_token"])
    refresh(client, tokens["refresh_token"])
    assert client.get(ME, headers=bearer(other["access_token"])).status_code == 200
    assert refresh(client, other["refresh_token"]).status_code == 200


def test_concurrent_refreshes_with_one_token_give_exactly_one_new_pair(app, client, tokens):
    statuses = at_once(app, 8, lambda own: refresh(own, tokens["refresh_token"]).status_code)
    assert sorted(statuses) == [200] + [401] * 7


def test_refresh_with_an_access_token_is_401(client, tokens):
    response = refresh(client, tokens["access_token"])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_refresh_with_an_access_token_in_the_header_is_401(client, tokens):
    assert client.post(REFRESH, headers=bearer(tokens["access_token"])).status_code == 401


def test_a_refresh_token_cannot_be_used_as_an_access_token(client, tokens):
    response = client.get(ME, headers=bearer(tokens["refresh_token"]))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_refresh_of_a_deactivated_user_is_401(client, user, tokens):
    from saas.extensions import db
    from saas.users.models import User

    db.session.get(User, user["id"]).is_active = False
    db.session.commit()
    assert refresh(client, tokens["refresh_token"]).status_code == 401


# Logout


def test_logout_is_204(client, tokens):
    response = client.post(LOGOUT, headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    assert response.get_data() == b""


def test_after_logout_the_access_token_is_401(client, tokens):
    client.post(LOGOUT, headers=bearer(tokens["access_token"]))
    response = client.get(ME, headers=bearer(tokens["access_token"]))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_after_logout_the_refresh_token_is_401(client, tokens):
    client.post(LOGOUT, headers=bearer(tokens["access_token"]))
    assert refresh(client, tokens["refresh_token"]).status_code == 401


def test_logout_leaves_the_users_other_sessions_working(client, tokens):
    other = login(client)
    client.post(LOGOUT, headers=bearer(tokens["access_token"]))
    assert client.get(ME, headers=bearer(other["access_token"])).status_code == 200
    assert refresh(client, other["refresh_token"]).status_code == 200


def test_logout_without_a_token_is_401(client):
    assert client.post(LOGOUT).status_code == 401


def test_logout_with_a_refresh_token_is_401(client, tokens):
    assert client.post(LOGOUT, headers=bearer(tokens["refresh_token"])).status_code == 401


def test_logout_twice_with_the_same_token_is_401_the_second_time(client, tokens):
    client.post(LOGOUT, headers=bearer(tokens["access_token"]))
    assert client.post(LOGOUT, headers=bearer(tokens["access_token"])).status_code == 401


def test_logout_all_ends_every_session_of_the_user(client, tokens):
    others = [login(client), login(client)]
    assert client.post(LOGOUT_ALL, headers=bearer(tokens["access_token"])).status_code == 204
    for pair in [tokens, *others]:
        assert client.get(ME, headers=bearer(pair["access_token"])).status_code == 401
        assert refresh(client, pair["refresh_token"]).status_code == 401


def test_logout_all_leaves_other_users_logged_in(client, tokens):
    other = sign_up(client, "other@example.com")
    client.post(LOGOUT_ALL, headers=bearer(tokens["access_token"]))
    assert client.get(ME, headers=bearer(other)).status_code == 200


def test_the_user_can_log_in_again_after_logout_all(client, tokens):
    client.post(LOGOUT_ALL, headers=bearer(tokens["access_token"]))
    assert client.get(ME, headers=bearer(login(client)["access_token"])).status_code == 200


@pytest.mark.parametrize("bad_text", ["Ada\x00Lovelace", "Ada\ud800"])
def test_unstorable_characters_in_full_name_are_a_422_and_store_nothing(client, bad_text):
    response = client.post(
        "/api/v1/auth/register", json={"email": "nul@example.com", "password": PASSWORD, "full_name": bad_text}
    )
    assert response.status_code == 422
    assert "full_name" in response.get_json()["errors"]["json"]
    assert client.post("/api/v1/auth/login", json={"email": "nul@example.com", "password": PASSWORD}).status_code == 401


def test_a_lone_surrogate_in_a_password_is_a_422_not_a_crash(client):
    response = client.post("/api/v1/auth/register", json={"email": "sur@example.com", "password": "password\ud800"})
    assert response.status_code == 422
    login = client.post("/api/v1/auth/login", json={"email": "sur@example.com", "password": "password\ud800"})
    assert login.status_code == 422
