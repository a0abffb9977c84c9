"""Issue 22: two-factor authentication. Every rule is tried from the side that should be refused:
replayed codes, a token used twice or late, brute force of the six digits, a reset that would
turn it off, organizations that require it, the admin API without it."""
import json
import re

import pytest
import sqlalchemy as sa

from saas.auth.models import AuthSession, LoginChallenge
from saas.extensions import db
from saas.orgs.models import AuditEvent
from saas.users.models import RecoveryCode, TotpCredential, User
from tests.conftest import make_app
from tests.helpers import PASSWORD, at_once, bearer, login, register
from tests.mfa_support import MFA, Authenticator, enrol, log_in_with_second_factor
from tests.org_support import ORGS, Team

LOGIN = "/api/v1/auth/login"
VERIFY = f"{MFA}/verify"
ME = "/api/v1/users/me"
SESSIONS = "/api/v1/auth/sessions"
NEW_PASSWORD = "a fresh passphrase nobody knows"


@pytest.fixture
def team(mailing, smtp):
    return Team(mailing(), smtp)


def user_row(email):
    db.session.expire_all()
    return db.session.scalar(sa.select(User).where(User.email == email))


def account_events(user_id):
    db.session.expire_all()
    return [event.action for event in db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.org_id.is_(None), AuditEvent.target == f"user:{user_id}")
        .order_by(AuditEvent.id))]


def assert_rejected(response):
    """The one 401 of the second-factor step, whatever went wrong."""
    assert response.status_code == 401, response.get_json()
    assert response.get_json()["message"] == "The login could not be completed: its mfa_token is invalid or expired, or the code is wrong."
    assert "access_token" not in response.get_json()


def pending_login(client, email="user@example.com", password=PASSWORD):
    response = client.post(LOGIN, json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- enrolling ------------------------------------------------------------------------------


def test_setting_up_and_enabling_an_authenticator(team, smtp):
    token = team.person("ada@example.com")
    assert team.get(MFA, token).get_json() == {"enabled": False, "methods": [], "recovery_codes_remaining": 0}
    wrong = team.client.post(f"{MFA}/totp/setup", json={"current_password": "not it at all"}, headers=bearer(token))
    assert wrong.status_code == 400

    setup = team.client.post(f"{MFA}/totp/setup", json={"current_password": PASSWORD}, headers=bearer(token)).get_json()
    assert set(setup) == {"secret", "otpauth_uri", "qr_svg"}
    assert setup["otpauth_uri"].startswith("otpauth://totp/saas:ada%40example.com?secret=")
    assert "issuer=saas" in setup["otpauth_uri"] and setup["qr_svg"].startswith("<svg")
    # Nothing is active yet: logging in needs only the password.
    assert "access_token" in pending_login(team.client, "ada@example.com")
    assert team.get(ME, token).get_json()["mfa_enabled"] is False

    device = Authenticator(setup["secret"])
    refused = team.client.post(f"{MFA}/totp/enable", json={"code": "000000" if device.code_of(0) != "000000" else "111111"},
                               headers=bearer(token))
    assert refused.status_code == 400 and team.get(ME, token).get_json()["mfa_enabled"] is False

    enabled = team.client.post(f"{MFA}/totp/enable", json={"code": device.code()}, headers=bearer(token))
    assert enabled.status_code == 200
    codes = enabled.get_json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert all(len(code) == 13 and code[6] == "-" for code in codes)
    assert team.get(MFA, token).get_json() == {"enabled": True, "methods": ["totp", "recovery_code"],
                                               "recovery_codes_remaining": 10}
    assert team.get(ME, token).get_json()["mfa_enabled"] is True
    assert [m for m in smtp.wait_for("ada@example.com", count=2) if "Two-factor authentication is on" in m.subject]
    assert account_events(user_row("ada@example.com").id) == ["mfa.enabled"]
    again = team.client.post(f"{MFA}/totp/setup", json={"current_password": PASSWORD}, headers=bearer(token))
    assert again.status_code == 409


def test_a_new_setup_replaces_one_not_confirmed(team):
    token = team.person("ada@example.com")
    first = team.client.post(f"{MFA}/totp/setup", json={"current_password": PASSWORD}, headers=bearer(token)).get_json()
    second = team.client.post(f"{MFA}/totp/setup", json={"current_password": PASSWORD}, headers=bearer(token)).get_json()
    assert first["secret"] != second["secret"]
    stale = team.client.post(f"{MFA}/totp/enable", json={"code": Authenticator(first["secret"]).code()}, headers=bearer(token))
    assert stale.status_code == 400
    assert team.client.post(f"{MFA}/totp/enable", json={"code": Authenticator(second["secret"]).code()},
                            headers=bearer(token)).status_code == 200


def test_secrets_are_encrypted_and_codes_hashed_and_shown_nowhere(team, capsys):
    token = team.person("ada@example.com")
    setup = team.client.post(f"{MFA}/totp/setup", json={"current_password": PASSWORD}, headers=bearer(token)).get_json()
    codes = team.client.post(f"{MFA}/totp/enable", json={"code": Authenticator(setup["secret"]).code()},
                             headers=bearer(token)).get_json()["recovery_codes"]
    user = user_row("ada@example.com")
    stored = db.session.get(TotpCredential, user.id)
    assert setup["secret"] not in stored.secret_encrypted
    rows = db.session.scalars(sa.select(RecoveryCode).where(RecoveryCode.user_id == user.id)).all()
    stored_text = json.dumps([(row.salt, row.code_hash) for row in rows])
    for code in codes:
        assert code not in stored_text and code.replace("-", "") not in stored_text
    export = team.get("/api/v1/users/me/export", token).get_data(as_text=True)
    assert json.loads(export)["two_factor"]["enabled"] is True
    captured = capsys.readouterr()
    seen = export + captured.out + captured.err
    for secret in [setup["secret"], *codes]:
        assert secret not in seen


def test_the_secret_survives_a_key_rotation_and_no_other_key_reads_it(app_with, mailing, smtp):
    first_key, second_key = "k" * 40, "n" * 40
    client = mailing(MFA_ENCRYPTION_KEY=first_key)
    register(client, "ada@example.com")
    device, _ = enrol(client, login(client, "ada@example.com")["access_token"])

    rotated = mailing(MFA_ENCRYPTION_KEY=f"{second_key},{first_key}")
    assert log_in_with_second_factor(rotated, "ada@example.com", device.code()).status_code == 200
    result = rotated.application.test_cli_runner().invoke(args=["users", "reencrypt-secrets"])
    assert result.exit_code == 0 and "re-encrypted 1 secrets" in result.output

    only_new = mailing(MFA_ENCRYPTION_KEY=second_key)
    assert log_in_with_second_factor(only_new, "ada@example.com", device.code()).status_code == 200
    wrong = mailing(MFA_ENCRYPTION_KEY="w" * 40)
    unreadable = log_in_with_second_factor(wrong, "ada@example.com", device.code())
    assert unreadable.status_code == 503 and "MFA_ENCRYPTION_KEY" in unreadable.get_json()["message"]


# --- logging in -----------------------------------------------------------------------------


def test_a_login_with_two_factor_answers_a_pending_login_then_tokens(team):
    token = team.person("ada@example.com")
    device, _ = enrol(team.client, token)
    first = team.client.post(LOGIN, json={"email": "ada@example.com", "password": PASSWORD})
    body = first.get_json()
    assert first.status_code == 200
    assert set(body) == {"mfa_required", "mfa_token", "mfa_methods", "expires_in"}
    assert (body["mfa_required"], body["mfa_methods"], body["expires_in"]) == (True, ["totp", "recovery_code"], 300)
    # The OAuth2 form (Swagger UI's Authorize) gets the same step.
    form = team.client.post(LOGIN, data={"username": "ada@example.com", "password": PASSWORD})
    assert form.get_json()["mfa_required"] is True and "access_token" not in form.get_json()

    second = team.client.post(VERIFY, json={"mfa_token": body["mfa_token"], "code": device.code()})
    assert second.status_code == 200
    pair = second.get_json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    sessions = team.get(SESSIONS, pair["access_token"]).get_json()
    current = [session for session in sessions if session["current"]]
    assert len(current) == 1 and current[0]["methods"] == ["password", "mfa"]
    refreshed = team.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200


def test_a_totp_code_is_accepted_once_on_any_login(team):
    token = team.person("ada@example.com")
    device, _ = enrol(team.client, token)
    code = device.code()
    assert log_in_with_second_factor(team.client, "ada@example.com", code).status_code == 200
    assert_rejected(log_in_with_second_factor(team.client, "ada@example.com", code))  # the same code again
    older = device.code_of(device.last_step - 1)
    assert_rejected(log_in_with_second_factor(team.client, "ada@example.com", older))  # an older one
    assert log_in_with_second_factor(team.client, "ada@example.com", device.code()).status_code == 200


def test_two_logins_racing_with_one_code_get_one_session(team):
    from tests.helpers import at_once

    token = team.person("ada@example.com")
    device, _ = enrol(team.client, token)
    code = device.code()
    tokens = [pending_login(team.client, "ada@example.com")["mfa_token"] for _ in range(4)]
    results = at_once(team.client.application, 4, lambda client: client.post(
        VERIFY, json={"mfa_token": tokens.pop(), "code": code}).status_code)
    assert sorted(results) == [200, 401, 401, 401]


def test_a_recovery_code_works_once_in_any_case_with_or_without_its_dash(team):
    token = team.person("ada@example.com")
    _, codes = enrol(team.client, token)
    user_id = user_row("ada@example.com").id
    assert log_in_with_second_factor(team.client, "ada@example.com", codes[0].upper()).status_code == 200
    assert log_in_with_second_factor(team.client, "ada@example.com", codes[1].replace("-", "")).status_code == 200
    assert log_in_with_second_factor(team.client, "ada@example.com", f" {codes[2]} ").status_code == 200
    assert_rejected(log_in_with_second_factor(team.client, "ada@example.com", codes[0]))
    assert team.get(MFA, token).get_json()["recovery_codes_remaining"] == 7
    assert account_events(user_id).count("mfa.recovery_code_used") == 3


def test_an_mfa_token_works_once(team):
    token = team.person("ada@example.com")
    device, codes = enrol(team.client, token)
    pending = pending_login(team.client, "ada@example.com")
    assert team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": device.code()}).status_code == 200
    assert_rejected(team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": codes[0]}))


def test_an_expired_mfa_token_is_refused(team):
    token = team.person("ada@example.com")
    _, codes = enrol(team.client, token)
    pending = pending_login(team.client, "ada@example.com")
    db.session.execute(sa.update(LoginChallenge).values(expires_at=sa.func.now() - sa.text("interval '1 second'")))
    db.session.commit()
    assert_rejected(team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": codes[0]}))


@pytest.mark.parametrize("mfa_token", ["", "x" * 43, "not-a-token", "\ud800" * 43])
def test_an_unknown_or_forged_mfa_token_is_refused(team, mfa_token):
    token = team.person("ada@example.com")
    _, codes = enrol(team.client, token)
    real = pending_login(team.client, "ada@example.com")["mfa_token"]
    forged = mfa_token or real[:20] + ("A" if real[20] != "A" else "B") + real[21:]
    assert forged != real
    assert_rejected(team.client.post(VERIFY, json={"mfa_token": forged, "code": codes[0]}))


@pytest.mark.parametrize("code", ["١٢٣٤٥٦", "１２３４５６", "\ud800" * 6, "\udfff" * 13, "\x00" * 6])
def test_a_code_in_other_digits_or_unencodable_characters_is_a_wrong_code(team, code):
    """Non-ASCII digits pass str.isdigit() and lone surrogates cannot be UTF-8: both are wrong
    codes (401, counted), never a 500."""
    token = team.person("ada@example.com")
    enrol(team.client, token)
    pending = pending_login(team.client, "ada@example.com")
    assert_rejected(team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": code}))
    assert db.session.scalar(sa.select(LoginChallenge.attempts)) == 1


def test_five_wrong_codes_kill_the_pending_login(team):
    token = team.person("ada@example.com")
    device, codes = enrol(team.client, token)
    pending = pending_login(team.client, "ada@example.com")
    right = device.code()
    wrong = [str((int(right) + offset) % 1_000_000).zfill(6) for offset in range(1, 6)]
    for code in wrong:
        assert_rejected(team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": code}))
    assert_rejected(team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": right}))
    assert_rejected(team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": codes[0]}))


def test_wrong_codes_sent_at_once_get_five_guesses_and_no_more(team):
    """Each wrong code is counted under the pending login's row lock, in the transaction that
    read the count: twelve guesses at the same moment still leave it dead after five."""
    token = team.person("ada@example.com")
    device, _ = enrol(team.client, token)
    pending = pending_login(team.client, "ada@example.com")
    right = device.code()
    wrong = str((int(right) + 500_000) % 1_000_000).zfill(6)
    statuses = at_once(team.client.application, 12, lambda own: own.post(
        VERIFY, json={"mfa_token": pending["mfa_token"], "code": wrong}).status_code)
    assert statuses == [401] * 12
    challenge = db.session.scalar(sa.select(LoginChallenge).where(LoginChallenge.user_id == user_row("ada@example.com").id))
    db.session.refresh(challenge)
    assert challenge.attempts == LoginChallenge.MAX_ATTEMPTS == 5
    assert_rejected(team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": right}))


def test_guessing_the_six_digits_hits_the_accounts_login_lockout(app_with, redis_url, smtp):
    """Wrong codes count against the account's failed-login limit, like wrong passwords: an
    attacker who knows the password cannot try codes at speed with new pending logins."""
    smtp.messages.clear()
    client = app_with(REDIS_URL="", RATELIMIT_ENABLED="true", RATELIMIT_STORAGE_URI=redis_url,
                      RATELIMIT_LOGIN_ACCOUNT="4 per 15 minutes", RATELIMIT_LOGIN_IP="1000 per minute", **smtp.settings)
    register(client, "ada@example.com")
    device, _ = enrol(client, login(client, "ada@example.com")["access_token"])
    right = device.code()
    statuses = []
    for attempt in range(6):
        pending = client.post(LOGIN, json={"email": "ada@example.com", "password": PASSWORD})
        if pending.status_code != 200:
            statuses.append(pending.status_code)
            continue
        guess = str((int(right) + attempt + 1) % 1_000_000).zfill(6)
        statuses.append(client.post(VERIFY, json={"mfa_token": pending.get_json()["mfa_token"], "code": guess}).status_code)
    assert statuses[:4] == [401, 401, 401, 401]
    assert set(statuses[4:]) == {429}
    # Locked: even the right code waits.
    assert client.post(LOGIN, json={"email": "ada@example.com", "password": PASSWORD}).status_code == 429


def test_a_password_reset_never_turns_two_factor_off(team, smtp):
    token = team.person("ada@example.com")
    device, _ = enrol(team.client, token)
    team.client.post("/api/v1/auth/password-reset", json={"email": "ada@example.com"})
    reset = [m for m in smtp.wait_for("ada@example.com", count=3) if "Reset" in m.subject][-1]
    confirmed = team.client.post("/api/v1/auth/password-reset/confirm", json={"token": reset.token, "password": NEW_PASSWORD})
    assert confirmed.status_code == 204
    pending = pending_login(team.client, "ada@example.com", NEW_PASSWORD)
    assert pending["mfa_required"] is True and "access_token" not in pending
    assert team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": device.code()}).status_code == 200


def test_a_pending_login_dies_when_the_password_changes(team):
    token = team.person("ada@example.com")
    device, codes = enrol(team.client, token)
    pending = pending_login(team.client, "ada@example.com")
    changed = team.client.patch(ME, json={"password": NEW_PASSWORD, "current_password": PASSWORD, "code": device.code()},
                                headers=bearer(token))
    assert changed.status_code == 200
    assert_rejected(team.client.post(VERIFY, json={"mfa_token": pending["mfa_token"], "code": codes[0]}))


# --- sensitive actions and management -------------------------------------------------------


def test_sensitive_account_actions_need_a_code_while_two_factor_is_on(team, smtp):
    token = team.person("ada@example.com")
    device, codes = enrol(team.client, token)
    attempts = {
        "password": lambda extra: team.client.patch(
            ME, json={"password": NEW_PASSWORD, "current_password": PASSWORD, **extra}, headers=bearer(token)),
        "email": lambda extra: team.client.post(
            f"{ME}/email", json={"email": "new@example.com", "current_password": PASSWORD, **extra}, headers=bearer(token)),
        "delete": lambda extra: team.client.delete(ME, json={"current_password": PASSWORD, **extra}, headers=bearer(token)),
    }
    for name, attempt in attempts.items():
        for extra in ({}, {"code": "123-456"}, {"code": "000000" if device.code_of(0) != "000000" else "111111"}):
            refused = attempt(extra)
            assert refused.status_code == 401, (name, extra, refused.get_json())
            assert refused.get_json()["errors"]["reason"] == ["mfa_code_required"]
    # Nothing changed.
    assert user_row("ada@example.com").deleted_at is None
    assert smtp.to("new@example.com") == []
    assert log_in_with_second_factor(team.client, "ada@example.com", codes[0]).status_code == 200  # old password
    assert attempts["email"]({"code": codes[1]}).status_code == 202
    assert attempts["password"]({"code": device.code()}).status_code == 200


def test_turning_two_factor_off_needs_the_password_and_a_code(team, smtp):
    token = team.person("ada@example.com")
    device, codes = enrol(team.client, token)
    assert team.client.post(f"{MFA}/totp/disable", json={"current_password": "wrong one here", "code": codes[0]},
                            headers=bearer(token)).status_code == 400
    assert team.client.post(f"{MFA}/totp/disable", json={"current_password": PASSWORD, "code": "000-000"},
                            headers=bearer(token)).status_code == 401
    assert team.get(MFA, token).get_json()["enabled"] is True
    off = team.client.post(f"{MFA}/totp/disable", json={"current_password": PASSWORD, "code": device.code()},
                           headers=bearer(token))
    assert off.status_code == 204
    assert team.get(MFA, token).get_json() == {"enabled": False, "methods": [], "recovery_codes_remaining": 0}
    assert "access_token" in pending_login(team.client, "ada@example.com")
    assert [m for m in smtp.to("ada@example.com") if "Two-factor authentication is off" in m.subject]
    user_id = user_row("ada@example.com").id
    assert db.session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user_id)) == 0
    assert account_events(user_id) == ["mfa.enabled", "mfa.disabled"]


def test_new_recovery_codes_replace_the_old_ones(team):
    token = team.person("ada@example.com")
    device, old = enrol(team.client, token)
    fresh = team.client.post(f"{MFA}/recovery-codes", json={"current_password": PASSWORD, "code": device.code()},
                             headers=bearer(token))
    assert fresh.status_code == 200
    new = fresh.get_json()["recovery_codes"]
    assert not set(new) & set(old)
    assert_rejected(log_in_with_second_factor(team.client, "ada@example.com", old[1]))
    assert log_in_with_second_factor(team.client, "ada@example.com", new[0]).status_code == 200
    assert "mfa.recovery_codes_regenerated" in account_events(user_row("ada@example.com").id)


def test_an_operator_resets_two_factor_for_an_owner_who_lost_everything(team, smtp):
    token = team.person("ada@example.com")
    enrol(team.client, token)
    runner = team.client.application.test_cli_runner()
    result = runner.invoke(args=["users", "reset-mfa", "ada@example.com"])
    assert result.exit_code == 0, result.output
    assert team.get(ME, token).status_code == 401  # every session ended
    assert "access_token" in pending_login(team.client, "ada@example.com")
    assert [m for m in smtp.to("ada@example.com") if "was reset" in m.subject]
    assert "admin.mfa_reset" in account_events(user_row("ada@example.com").id)
    again = runner.invoke(args=["users", "reset-mfa", "ada@example.com"])
    assert again.exit_code == 1 and "not on" in again.output


# --- sessions -------------------------------------------------------------------------------


def test_listing_and_ending_ones_own_sessions(team):
    team.person("ada@example.com")
    laptop = team.client.post(LOGIN, json={"email": "ada@example.com", "password": PASSWORD},
                              headers={"User-Agent": "laptop"}).get_json()
    phone = team.client.post(LOGIN, json={"email": "ada@example.com", "password": PASSWORD},
                             headers={"User-Agent": "phone"}).get_json()
    sessions = team.get(SESSIONS, laptop["access_token"]).get_json()
    assert len(sessions) == 3  # with the one Team.person opened
    assert {tuple(session) for session in sessions} == {(
        "id", "created_at", "last_refreshed_at", "user_agent", "ip_address", "methods", "current")}
    phone_id = next(session["id"] for session in sessions if session["user_agent"] == "phone")
    assert [session["current"] for session in sessions if session["user_agent"] == "laptop"] == [True]

    other = team.person("bob@example.com")
    assert team.client.delete(f"{SESSIONS}/{phone_id}", headers=bearer(other)).status_code == 404
    assert team.get(ME, phone["access_token"]).status_code == 200
    assert team.client.delete(f"{SESSIONS}/{phone_id}", headers=bearer(laptop["access_token"])).status_code == 204
    assert team.get(ME, phone["access_token"]).status_code == 401
    assert team.client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}).status_code == 401
    assert team.client.delete(f"{SESSIONS}/{phone_id}", headers=bearer(laptop["access_token"])).status_code == 404
    assert team.get(ME, laptop["access_token"]).status_code == 200


# --- organizations and operators ------------------------------------------------------------


def _scoped_paths(app, org_id, user_id):
    """Every GET of the API scoped to an organization by its path, with the ids filled in."""
    paths = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if "GET" in rule.methods and rule.rule.startswith(f"{ORGS}/<int:org_id>") and getattr(view, "auth_schemes", None):
            path = rule.rule.replace("<int:org_id>", str(org_id)).replace("<int:user_id>", str(user_id))
            paths.append(re.sub(r"<int:\w+>", "1", path))  # other ids: the gate refuses before they are looked up
    return paths


def test_an_organization_that_requires_two_factor_refuses_members_without_it(team, fake_openai):
    owner = team.person("owner@example.com")
    org = team.org(owner)
    admin = team.join(owner, org["id"], "admin@example.com", "admin")
    member = team.join(owner, org["id"], "member@example.com")
    key = team.client.post(f"{ORGS}/{org['id']}/api-keys", json={"name": "ci"}, headers=bearer(owner)).get_json()["key"]

    assert team.client.patch(f"{ORGS}/{org['id']}", json={"require_mfa": True}, headers=bearer(admin)).status_code == 403
    assert team.client.patch(f"{ORGS}/{org['id']}", json={"require_mfa": True}, headers=bearer(owner)).status_code == 409
    device, _ = enrol(team.client, owner)
    required = team.client.patch(f"{ORGS}/{org['id']}", json={"require_mfa": True}, headers=bearer(owner))
    assert required.status_code == 200 and required.get_json()["require_mfa"] is True

    member_id = team.get(ME, member).get_json()["id"]
    paths = _scoped_paths(team.client.application, org["id"], member_id)
    assert len(paths) >= 6
    for path in paths:
        refused = team.get(path, member)
        assert refused.status_code == 403, path
        assert refused.get_json()["errors"]["reason"] == ["mfa_required_by_org"]
    acting = team.get("/api/v1/usage", member, headers={"X-Org-Id": str(org["id"])})
    assert acting.status_code == 403 and acting.get_json()["errors"]["reason"] == ["mfa_required_by_org"]
    assert team.get("/api/v1/usage", member).status_code == 200  # their personal organization is theirs
    assert team.client.get("/api/v1/usage", headers={"X-API-Key": key}).status_code == 200  # keys unaffected
    assert team.get(f"{ORGS}/{org['id']}", owner).status_code == 200

    # A member can still enrol, and is then let in; and cannot turn it off while a member.
    member_device, _ = enrol(team.client, member)
    assert team.get(f"{ORGS}/{org['id']}", member).status_code == 200
    kept = team.client.post(f"{MFA}/totp/disable", json={"current_password": PASSWORD, "code": member_device.code()},
                            headers=bearer(member))
    assert kept.status_code == 409 and kept.get_json()["errors"]["organizations"] == [org["id"]]
    # Someone without it can still leave.
    admin_id = team.get(ME, admin).get_json()["id"]
    assert team.client.delete(f"{ORGS}/{org['id']}/members/{admin_id}", headers=bearer(admin)).status_code == 204


def test_the_admin_api_needs_a_session_that_passed_two_factor(mailing):
    client = mailing(ADMIN_REQUIRE_MFA="true")
    register(client, "ops@example.com")
    runner = client.application.test_cli_runner()
    assert runner.invoke(args=["users", "make-superuser", "ops@example.com"]).exit_code == 0
    password_only = login(client, "ops@example.com")["access_token"]
    refused = client.get("/api/v1/admin/stats", headers=bearer(password_only))
    assert refused.status_code == 403 and refused.get_json()["errors"]["reason"] == ["mfa_required"]
    device, _ = enrol(client, password_only)
    with_mfa = log_in_with_second_factor(client, "ops@example.com", device.code()).get_json()["access_token"]
    assert client.get("/api/v1/admin/stats", headers=bearer(with_mfa)).status_code == 200
    assert client.get("/api/v1/admin/stats", headers=bearer(password_only)).status_code == 403


def test_admin_require_mfa_is_on_by_default_in_production_only():
    from config import Config

    production = Config.from_env({"APP_ENV": "production", "SECRET_KEY": "s" * 40}).flask_config()
    assert production["ADMIN_REQUIRE_MFA"] is True
    assert Config.from_env({"APP_ENV": "development"}).flask_config()["ADMIN_REQUIRE_MFA"] is False
    assert Config.from_env({"APP_ENV": "production", "SECRET_KEY": "s" * 40, "ADMIN_REQUIRE_MFA": "false"}).flask_config()[
        "ADMIN_REQUIRE_MFA"] is False


def test_two_factor_through_gunicorn_in_production(database, redis_url, smtp):
    """The whole login as production serves it: gunicorn, APP_ENV=production."""
    import requests

    from tests.servers import gunicorn

    smtp.messages.clear()
    with gunicorn(APP_ENV="production", REDIS_URL="", RATELIMIT_ENABLED="false", **smtp.settings) as server:
        base = str(server)
        requests.post(f"{base}/api/v1/auth/register", json={"email": "ada@example.com", "password": PASSWORD}, timeout=10)
        token = requests.post(f"{base}{LOGIN}", json={"email": "ada@example.com", "password": PASSWORD}, timeout=10).json()["access_token"]
        setup = requests.post(f"{base}{MFA}/totp/setup", json={"current_password": PASSWORD}, headers=bearer(token), timeout=10).json()
        device = Authenticator(setup["secret"])
        enabled = requests.post(f"{base}{MFA}/totp/enable", json={"code": device.code()}, headers=bearer(token), timeout=10)
        assert enabled.status_code == 200
        pending = requests.post(f"{base}{LOGIN}", json={"email": "ada@example.com", "password": PASSWORD}, timeout=10).json()
        assert pending["mfa_required"] is True
        done = requests.post(f"{base}{VERIFY}", json={"mfa_token": pending["mfa_token"], "code": device.code()}, timeout=10)
        assert done.status_code == 200 and "access_token" in done.json()
        assert requests.get(f"{base}{ME}", headers=bearer(done.json()["access_token"]), timeout=10).json()["mfa_enabled"] is True
