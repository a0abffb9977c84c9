"""The current user's account: reading it, changing it, and deactivation."""
import pytest

from saas.extensions import db
from saas.users.models import User
from saas.users.service import set_user_active
from tests.helpers import PASSWORD, assert_no_password_or_hash, bearer, login

ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
NEW_PASSWORD = "a brand new passphrase"


def patch_me(client, tokens, **changes):
    return client.patch(ME, json=changes, headers=bearer(tokens["access_token"]))


def stored_user(user_id):
    db.session.expire_all()
    return db.session.get(User, user_id)


# Reading


def test_get_me_returns_the_tokens_user(client, user, tokens):
    response = client.get(ME, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.get_json()["id"] == user["id"]
    assert response.get_json()["email"] == user["email"]


def test_get_me_never_returns_the_password_hash(client, tokens):
    body = client.get(ME, headers=bearer(tokens["access_token"])).get_json()
    assert_no_password_or_hash(body)


def test_get_me_must_not_be_cached(client, tokens):
    assert client.get(ME, headers=bearer(tokens["access_token"])).headers["Cache-Control"] == "no-store"


# Changing the profile


def test_patch_full_name_changes_it(client, user, tokens):
    response = patch_me(client, tokens, full_name="Grace Hopper")
    assert response.status_code == 200
    assert response.get_json()["full_name"] == "Grace Hopper"
    assert stored_user(user["id"]).full_name == "Grace Hopper"


def test_patch_full_name_sets_updated_at(client, user, tokens):
    assert patch_me(client, tokens, full_name="Grace Hopper").get_json()["updated_at"] is not None


def test_patch_full_name_to_null_clears_it(client, user, tokens):
    patch_me(client, tokens, full_name="Grace Hopper")
    assert patch_me(client, tokens, full_name=None).get_json()["full_name"] is None


def test_patch_full_name_longer_than_255_characters_is_422(client, tokens):
    assert patch_me(client, tokens, full_name="x" * 256).status_code == 422


def test_patch_with_an_empty_body_changes_nothing(client, user, tokens):
    response = patch_me(client, tokens)
    assert response.status_code == 200
    assert response.get_json()["email"] == user["email"]


def test_patch_without_a_token_is_401(client, user):
    response = client.patch(ME, json={"full_name": "Mallory"})
    assert response.status_code == 401
    assert stored_user(user["id"]).full_name is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("email", "mallory@example.com"),
        ("is_superuser", True),
        ("is_active", False),
        ("stripe_customer_id", "cus_stolen"),
        ("id", 999),
        ("hashed_password", "$2b$04$abcdefghijklmnopqrstuv"),
        ("created_at", "2000-01-01T00:00:00+00:00"),
    ],
)
def test_patch_of_a_protected_field_is_422_and_changes_nothing(client, user, tokens, field, value):
    response = patch_me(client, tokens, full_name="Mallory", **{field: value})
    assert response.status_code == 422
    assert field in response.get_json()["errors"]["json"]
    after = stored_user(user["id"])
    assert after.full_name is None
    assert after.email == user["email"]
    assert after.is_superuser is False
    assert after.is_active is True
    assert after.stripe_customer_id == user["stripe_customer_id"]


# Changing the password


def test_password_change_without_current_password_is_422(client, user, tokens):
    response = patch_me(client, tokens, password=NEW_PASSWORD)
    assert response.status_code == 422
    assert "current_password" in response.get_json()["errors"]["json"]


def test_password_change_with_a_wrong_current_password_is_400(client, user, tokens):
    response = patch_me(client, tokens, password=NEW_PASSWORD, current_password="not my password")
    assert response.status_code == 400
    assert "current_password" in response.get_json()["errors"]


def test_a_refused_password_change_keeps_the_old_password(client, user, tokens):
    patch_me(client, tokens, password=NEW_PASSWORD, current_password="not my password")
    assert login(client)["access_token"]


def test_a_refused_password_change_keeps_other_sessions(client, user, tokens):
    other = login(client)
    patch_me(client, tokens, password=NEW_PASSWORD, current_password="not my password")
    assert client.get(ME, headers=bearer(other["access_token"])).status_code == 200


def test_a_too_short_new_password_is_422(client, tokens):
    assert patch_me(client, tokens, password="short", current_password=PASSWORD).status_code == 422


def test_password_change_succeeds_with_the_current_password(client, tokens):
    response = patch_me(client, tokens, password=NEW_PASSWORD, current_password=PASSWORD)
    assert response.status_code == 200
    assert_no_password_or_hash(response.get_json())


def test_after_a_password_change_the_new_password_logs_in(client, tokens):
    patch_me(client, tokens, password=NEW_PASSWORD, current_password=PASSWORD)
    assert login(client, password=NEW_PASSWORD)["access_token"]


def test_after_a_password_change_the_old_password_is_refused(client, user, tokens):
    patch_me(client, tokens, password=NEW_PASSWORD, current_password=PASSWORD)
    response = client.post(LOGIN, json={"email": user["email"], "password": PASSWORD})
    assert response.status_code == 401


def test_a_password_change_ends_every_other_session(client, tokens):
    others = [login(client), login(client)]
    patch_me(client, tokens, password=NEW_PASSWORD, current_password=PASSWORD)
    for other in others:
        assert client.get(ME, headers=bearer(other["access_token"])).status_code == 401
        assert client.post(REFRESH, json={"refresh_token": other["refresh_token"]}).status_code == 401


def test_a_password_change_keeps_the_current_session(client, tokens):
    patch_me(client, tokens, password=NEW_PASSWORD, current_password=PASSWORD)
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 200
    assert client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 200


# Deactivation


def test_deactivation_rejects_existing_access_tokens_at_once(client, user, tokens):
    set_user_active(stored_user(user["id"]), False)
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 401


def test_deactivation_rejects_existing_refresh_tokens_at_once(client, user, tokens):
    set_user_active(stored_user(user["id"]), False)
    assert client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_a_deactivated_user_cannot_log_in(client, user):
    set_user_active(stored_user(user["id"]), False)
    assert client.post(LOGIN, json={"email": user["email"], "password": PASSWORD}).status_code == 401


def test_reactivation_does_not_revive_the_old_tokens(client, user, tokens):
    set_user_active(stored_user(user["id"]), False)
    set_user_active(stored_user(user["id"]), True)
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 401
    assert client.get(ME, headers=bearer(login(client)["access_token"])).status_code == 200


def test_cli_deactivate_rejects_existing_tokens_at_once(app, client, user, tokens):
    result = app.test_cli_runner().invoke(args=["users", "deactivate", user["email"]])
    assert result.exit_code == 0, result.output
    assert client.get(ME, headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert stored_user(user["id"]).is_active is False


def test_cli_deactivate_finds_the_email_in_any_case(app, client, user):
    result = app.test_cli_runner().invoke(args=["users", "deactivate", user["email"].upper()])
    assert result.exit_code == 0, result.output
    assert stored_user(user["id"]).is_active is False


def test_cli_deactivate_of_an_unknown_email_fails(app, client, user):
    result = app.test_cli_runner().invoke(args=["users", "deactivate", "nobody@example.com"])
    assert result.exit_code != 0
    assert "nobody@example.com" in result.output
    assert stored_user(user["id"]).is_active is True


def test_cli_activate_lets_the_user_log_in_again(app, client, user):
    runner = app.test_cli_runner()
    runner.invoke(args=["users", "deactivate", user["email"]])
    result = runner.invoke(args=["users", "activate", user["email"]])
    assert result.exit_code == 0, result.output
    assert login(client)["access_token"]


def test_patch_without_a_token_is_401_even_with_an_invalid_body(client, user):
    response = client.patch(ME, json={"is_superuser": True, "full_name": 5})
    assert response.status_code == 401
    assert "errors" not in response.get_json()
