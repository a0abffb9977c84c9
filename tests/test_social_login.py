"""Issue 23: sign in with a provider. Over HTTP against the project's fake OpenID Connect provider
and fake GitHub; each rule is tried from the side that should be refused: forged, replayed and
expired states, a callback in another browser, forged ID tokens, unverified and taken addresses,
reused codes, two-factor, deactivated and deleted accounts."""
import pytest
import requests
import sqlalchemy as sa

from saas.auth.models import AuthSession
from saas.extensions import db
from saas.oauth.models import OAuthCode, OAuthState, UserIdentity
from saas.oauth.service import CALLBACK_ERRORS
from saas.orgs.models import AuditEvent, Organization
from saas.sweeps import sweep
from saas.users.events import LoginRefused, login_checking
from saas.users.models import User
from saas.users.service import set_user_active
from tests.fake_oidc import OTHER_ISSUER
from tests.helpers import PASSWORD, at_once, bearer, login, register
from tests.mfa_support import MFA, enrol
from tests.social_support import (
    API,
    FRONT_END_CALLBACK,
    GITHUB_CLIENT,
    OAUTH,
    OIDC_CLIENT,
    Browser,
    callback_url,
    front_end_params,
    query_of,
    social_settings,
    wait_for,
)
from tests.servers import gunicorn

ME = f"{API}/api/v1/users/me"


@pytest.fixture
def social(mailing, fake_oidc, fake_github):
    """Build a client of an app whose providers are the fakes (settings overridden by keyword)."""
    return lambda **overrides: mailing(**social_settings(fake_oidc, fake_github, **overrides))


@pytest.fixture
def client(social):
    return social()


@pytest.fixture
def browser(client):
    return Browser(client)


def error_of(response):
    params = front_end_params(response)
    assert set(params) == {"error"}, params
    assert params["error"] in CALLBACK_ERRORS
    return params["error"]


def users():
    db.session.expire_all()
    return db.session.scalars(sa.select(User).order_by(User.id)).all()


def identities():
    db.session.expire_all()
    return db.session.scalars(sa.select(UserIdentity).order_by(UserIdentity.id)).all()


def account_events(user_id):
    db.session.expire_all()
    return [(event.action, event.details) for event in db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.org_id.is_(None), AuditEvent.target == f"user:{user_id}")
        .order_by(AuditEvent.id))]


def me(client, access_token):
    response = client.get(ME, headers=bearer(access_token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def changed_in_the_middle(token):
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:]


# --- the providers and the redirect ----------------------------------------------------------


def test_the_configured_providers_are_listed_with_their_authorize_urls(client):
    response = client.get(f"{OAUTH}/providers")

    assert response.status_code == 200
    assert response.get_json() == [
        {"name": "oidc", "display_name": "Acme SSO", "authorize_url": f"{OAUTH}/oidc/authorize"},
        {"name": "github", "display_name": "GitHub", "authorize_url": f"{OAUTH}/github/authorize"},
    ]


def test_without_providers_the_list_is_empty_and_every_provider_is_a_404(app_with):
    client = app_with()

    assert client.get(f"{OAUTH}/providers").get_json() == []
    for path in ("/oidc/authorize", "/github/callback?code=x&state=y", "/facebook/authorize"):
        response = client.get(f"{OAUTH}{path}")
        assert response.status_code == 404 and response.get_json()["code"] == 404


def test_an_unknown_provider_is_a_404_beside_configured_ones(client, fake_oidc):
    for path in ("/google/authorize", "/google/callback", "/facebook/authorize", "/microsoft/callback?state=x"):
        response = client.get(f"{OAUTH}{path}")
        assert response.status_code == 404, path
        assert response.headers["Content-Type"] == "application/json"
    assert fake_oidc.requests == []


def test_authorize_redirects_with_state_nonce_and_pkce_and_binds_the_browser(browser, fake_oidc):
    start = browser.start()

    location = start.headers["Location"]
    assert location.startswith(f"{fake_oidc.issuer}/authorize?")
    params = query_of(location)
    assert params["client_id"] == OIDC_CLIENT[0]
    assert params["redirect_uri"] == callback_url("oidc")  # on PUBLIC_API_URL, exactly as registered
    assert params["response_type"] == "code" and params["scope"] == "openid email profile"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 43 and len(params["nonce"]) >= 43
    (cookie,) = start.headers.getlist("Set-Cookie")
    attributes = [part.strip() for part in cookie.split(";")]
    assert attributes[0].startswith("saas_oauth=")
    assert {"HttpOnly", "Path=/", "SameSite=Lax", "Max-Age=600"} <= set(attributes)
    assert "Secure" not in attributes  # outside production; see the gunicorn test
    assert start.headers["Cache-Control"] == "no-store"
    # Only hashes of the state and the cookie are stored, and the PKCE verifier is encrypted.
    (row,) = db.session.scalars(sa.select(OAuthState)).all()
    stored = " ".join(str(value) for value in row.__dict__.values())
    for secret in (params["state"], params["nonce"], attributes[0].split("=", 1)[1]):
        assert secret not in stored


@pytest.mark.parametrize("hops, expected", [
    ("1", "https://api.behind-a-proxy.test/api/v1/auth/oauth/oidc/callback"),
    ("0", "http://localhost/api/v1/auth/oauth/oidc/callback"),
], ids=["trusted proxy", "no proxy trusted"])
def test_without_public_api_url_the_callback_is_the_requests_own_url(social, hops, expected):
    """Behind PROXY_FIX_HOPS proxies, the scheme and host they forward; with none trusted, what
    the request says, whatever X-Forwarded-* a client sends."""
    client = social(PUBLIC_API_URL="", PROXY_FIX_HOPS=hops)
    forwarded = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                 "X-Forwarded-Host": "api.behind-a-proxy.test"}

    start = client.get("/api/v1/auth/oauth/oidc/authorize", headers=forwarded)
    listed = client.get("/api/v1/auth/oauth/providers", headers=forwarded).get_json()

    assert query_of(start.headers["Location"])["redirect_uri"] == expected
    assert listed[0]["authorize_url"] == expected.replace("/callback", "/authorize")


def test_two_sign_ins_in_two_tabs_of_one_browser_both_work(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    first, second = browser.start(), browser.start()

    back_first, back_second = browser.at_provider(first), browser.at_provider(second)

    assert set(front_end_params(browser.open(back_second))) == {"code"}
    assert set(front_end_params(browser.open(back_first))) == {"code"}


# --- signing up and signing in ---------------------------------------------------------------


def test_a_new_verified_identity_creates_a_verified_account_without_a_password(browser, client, fake_oidc, smtp):
    fake_oidc.sign_in_as(sub="u-ada", email="Ada@Example.com", email_verified=True, name="Ada Lovelace")

    pair = browser.tokens()

    user = me(client, pair["access_token"])
    assert (user["email"], user["full_name"], user["email_verified"], user["has_password"]) == (
        "ada@example.com", "Ada Lovelace", True, False)
    assert user["stripe_customer_id"]  # as at registration
    assert db.session.scalar(sa.select(Organization).where(Organization.personal_owner_id == user["id"])) is not None
    (identity,) = identities()
    assert (identity.user_id, identity.provider, identity.issuer, identity.subject, identity.email) == (
        user["id"], "oidc", fake_oidc.issuer, "u-ada", "ada@example.com")
    (session,) = db.session.scalars(sa.select(AuthSession)).all()
    assert session.method_list == ["oauth"]
    assert account_events(user["id"]) == [("oauth.signed_up", {"provider": "oidc"})]
    assert smtp.to("ada@example.com") == []  # verified by the provider: no verification message


def test_a_known_identity_logs_in_to_its_account_whatever_address_it_now_gives(browser, client, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    first = me(client, browser.tokens()["access_token"])
    fake_oidc.sign_in_as(sub="u-ada", email="ada.new@example.com", email_verified=False)

    second = me(client, browser.tokens()["access_token"])

    assert second["id"] == first["id"] and second["email"] == "ada@example.com"
    assert len(users()) == 1
    assert identities()[0].email == "ada.new@example.com"  # shown; never used to find anyone


def test_an_identity_is_found_by_subject_never_by_address(browser, client, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    browser.tokens()
    fake_oidc.sign_in_as(sub="u-impostor", email="ada@example.com")

    assert error_of(browser.sign_in()) == "account_exists"
    assert [identity.subject for identity in identities()] == ["u-ada"]


def test_tokens_never_appear_in_a_url(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")

    code = browser.code()
    pair = browser.exchange(code).get_json()

    assert len(browser.seen_urls) == 4  # authorize, the provider, the callback, the front end
    for url in browser.seen_urls:
        assert pair["access_token"] not in url and pair["refresh_token"] not in url
        assert "token" not in "".join(query_of(url))  # no parameter named like a token
    assert code.count(".") == 0  # an opaque code, not a JWT
    assert db.session.scalars(sa.select(OAuthState)).all() == []  # the used state is gone


def test_github_signs_up_with_its_verified_primary_address_and_its_numeric_id(browser, client, fake_github):
    fake_github.sign_in_as(id=4242, login="ada", name=None, emails=[
        {"email": "old@example.com", "primary": False, "verified": True, "visibility": None},
        {"email": "ada@example.com", "primary": True, "verified": True, "visibility": "private"},
    ])

    user = me(client, browser.tokens("github")["access_token"])

    assert (user["email"], user["full_name"], user["email_verified"]) == ("ada@example.com", "ada", True)
    (identity,) = identities()
    assert (identity.provider, identity.issuer, identity.subject) == ("github", fake_github.base_url, "4242")
    (token_request,) = fake_github.requests_to("/login/oauth/access_token", "POST")
    assert token_request.params["code_verifier"] and token_request.params["client_secret"]
    (authorize_request,) = fake_github.requests_to("/login/oauth/authorize")
    assert authorize_request.params["code_challenge_method"] == "S256"
    assert set(authorize_request.params["scope"].split()) == {"read:user", "user:email"}


@pytest.mark.parametrize("emails", [
    [{"email": "ada@example.com", "primary": True, "verified": False, "visibility": "private"}],
    [{"email": "ada@example.com", "primary": True, "verified": False, "visibility": "private"},
     {"email": "other@example.com", "primary": False, "verified": True, "visibility": None}],
    [],
], ids=["unverified primary", "verified but not primary", "no address"])
def test_github_without_a_verified_primary_address_creates_nothing(browser, fake_github, emails):
    fake_github.sign_in_as(id=7, login="eve", emails=emails)

    assert error_of(browser.sign_in("github")) == "email_not_verified"
    assert users() == [] and identities() == []


def test_a_github_login_rename_changes_nothing(browser, client, fake_github):
    fake_github.sign_in_as(id=99, login="ada", email="ada@example.com")
    first = me(client, browser.tokens("github")["access_token"])
    fake_github.sign_in_as(id=99, login="ada-renamed", email="ada@example.com")

    assert me(client, browser.tokens("github")["access_token"])["id"] == first["id"]


def test_an_unverified_address_creates_nothing(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-eve", email="eve@example.com", email_verified=False)

    assert error_of(browser.sign_in()) == "email_not_verified"
    assert users() == [] and identities() == []


def test_an_address_an_account_has_links_nothing_and_creates_nothing(browser, client, fake_oidc):
    owner = register(client, "ada@example.com")
    fake_oidc.sign_in_as(sub="u-someone", email="ADA@example.com", email_verified=True)

    assert error_of(browser.sign_in()) == "account_exists"
    assert [user.id for user in users()] == [owner["id"]]
    assert identities() == []
    assert db.session.scalars(sa.select(OAuthCode)).all() == []


def test_the_person_declining_at_the_provider_is_access_denied(browser, fake_oidc):
    fake_oidc.deny()

    assert error_of(browser.sign_in()) == "access_denied"


def test_a_provider_error_other_than_a_refusal_is_provider_error(browser, fake_oidc):
    fake_oidc.deny("temporarily_unavailable", "try later")

    assert error_of(browser.sign_in()) == "provider_error"


def test_a_callback_without_a_code_is_provider_error(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    back = browser.at_provider(browser.start())

    assert error_of(browser.open(back.replace("code=", "not_code="))) == "provider_error"
    assert users() == []


def test_a_provider_down_at_the_code_exchange_is_provider_unavailable(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    back = browser.at_provider(browser.start())
    fake_oidc.mode = "down"

    assert error_of(browser.open(back)) == "provider_unavailable"
    assert users() == []


def test_a_discovery_document_naming_another_issuer_stops_at_authorize(browser, fake_oidc):
    fake_oidc.discovery = "other_issuer"

    assert error_of(browser.open(f"{OAUTH}/oidc/authorize")) == "provider_error"
    assert fake_oidc.requests_to("/authorize") == []
    assert db.session.scalars(sa.select(OAuthState)).all() == []


def test_the_issuer_must_be_configured_exactly_as_the_provider_names_it(social, fake_oidc):
    browser = Browser(social(OAUTH_OIDC_ISSUER=fake_oidc.issuer + "/"))

    assert error_of(browser.open(f"{OAUTH}/oidc/authorize")) == "provider_error"
    assert len(fake_oidc.requests_to("/.well-known/openid-configuration")) == 1
    assert fake_oidc.requests_to("/authorize") == []


def test_an_unreachable_discovery_document_is_provider_unavailable(browser, fake_oidc):
    fake_oidc.discovery = "unavailable"

    assert error_of(browser.open(f"{OAUTH}/oidc/authorize")) == "provider_unavailable"


def test_a_rotated_signing_key_is_fetched_again(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    browser.tokens()

    fake_oidc.rotate_key()

    browser.tokens()
    assert len(fake_oidc.requests_to("/jwks")) == 2


# --- the state: forged, replayed, another browser, expired ---------------------------------------


def test_a_forged_state_is_refused_and_spoils_nothing(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    back = browser.at_provider(browser.start())
    state = query_of(back)["state"]

    assert error_of(browser.open(back.replace(state, changed_in_the_middle(state)))) == "invalid_state"
    assert error_of(browser.open(back.replace(state, ""))) == "invalid_state"
    assert users() == []
    assert set(front_end_params(browser.open(back))) == {"code"}  # the real one still works


def test_a_replayed_state_is_refused(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    back = browser.at_provider(browser.start())
    assert set(front_end_params(browser.open(back))) == {"code"}

    assert error_of(browser.open(back)) == "invalid_state"


def test_a_callback_opened_in_another_browser_is_refused(social, client, fake_oidc):
    """Login CSRF: an attacker who began a sign-in as themselves sends their callback URL to a
    victim; the victim's browser lacks the attacker's cookie, so nothing logs in."""
    attacker, victim = Browser(client), Browser(social())
    fake_oidc.sign_in_as(sub="u-mallory", email="mallory@example.com")
    back = attacker.at_provider(attacker.start())

    assert error_of(victim.open(back)) == "invalid_state"
    victim.start()  # a cookie of its own changes nothing
    assert error_of(victim.open(back)) == "invalid_state"
    assert users() == []
    assert set(front_end_params(attacker.open(back))) == {"code"}


def test_a_state_of_another_provider_is_refused(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    back = browser.at_provider(browser.start())

    assert error_of(browser.open(back.replace("/oidc/callback", "/github/callback"))) == "invalid_state"


def test_an_expired_state_is_refused(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    back = browser.at_provider(browser.start())
    db.session.execute(sa.update(OAuthState).values(expires_at=sa.func.now() - sa.text("interval '1 second'")))
    db.session.commit()

    assert error_of(browser.open(back)) == "invalid_state"
    assert users() == []


# --- forged ID tokens -------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    {"nonce": "a-nonce-from-another-sign-in"},
    {"audience": "someone-elses-client"},
    {"issuer": OTHER_ISSUER},
    {"expired": True},
    {"foreign_key": True},
    {"unsigned": True},
], ids=["wrong nonce", "another audience", "another issuer", "expired", "foreign key", "unsigned"])
def test_a_forged_id_token_logs_nobody_in(browser, fake_oidc, fault, caplog):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    fake_oidc.forge_id_tokens(**fault)

    assert error_of(browser.sign_in()) == "provider_error"
    assert users() == [] and identities() == []
    assert "the ID token was refused" in caplog.text


def test_a_forged_id_token_does_not_log_in_a_known_identity_either(browser, client, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    browser.tokens()
    fake_oidc.forge_id_tokens(audience="someone-elses-client")

    assert error_of(browser.sign_in()) == "provider_error"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuthSession)) == 1


# --- the one-time code --------------------------------------------------------------------------


def test_the_one_time_code_works_once(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    code = browser.code()

    assert browser.exchange(code).status_code == 200
    again = browser.exchange(code)
    assert again.status_code == 401 and "access_token" not in again.get_json()


def test_one_code_exchanged_twice_at_once_opens_one_session(social, fake_oidc):
    client = social()
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    code = Browser(client).code()

    statuses = at_once(client.application, 4, lambda own: own.post(f"{OAUTH}/exchange", json={"code": code}).status_code)

    assert sorted(statuses) == [200, 401, 401, 401]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuthSession)) == 1


@pytest.mark.parametrize("code", ["", "x" * 300, "not-a-code", None, 12])
def test_a_bad_code_is_refused(browser, code):
    response = browser.exchange(code)

    assert response.status_code in (401, 422)
    assert "access_token" not in response.get_json()


def test_a_forged_or_expired_code_is_a_401(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    code = browser.code()

    assert browser.exchange(changed_in_the_middle(code)).status_code == 401
    assert browser.exchange("\ud800" * 43).status_code == 401  # a lone surrogate: no match, not a 500
    db.session.execute(sa.update(OAuthCode).values(expires_at=sa.func.now() - sa.text("interval '1 second'")))
    db.session.commit()
    assert browser.exchange(code).status_code == 401


def test_a_code_dies_with_a_security_change_of_its_account(browser, client, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    pair = browser.tokens()
    code = browser.code()

    assert client.post(f"{API}/api/v1/auth/logout-all", headers=bearer(pair["access_token"])).status_code == 204

    assert browser.exchange(code).status_code == 401


def test_an_account_with_two_factor_still_needs_its_second_factor(social, fake_oidc):
    client = social()
    register(client, "ada@example.com")
    device, _ = enrol(client, login(client, "ada@example.com")["access_token"])
    link(Browser(client), client, login_with_mfa(client, device), fake_oidc, sub="u-ada")
    browser = Browser(client)
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")

    answer = browser.exchange(browser.code())

    assert answer.status_code == 200
    pending = answer.get_json()
    assert pending["mfa_required"] is True and "access_token" not in pending
    assert pending["mfa_methods"] == ["totp", "recovery_code"]
    done = client.post(f"{API}{MFA}/verify", json={"mfa_token": pending["mfa_token"], "code": device.code()})
    assert done.status_code == 200, done.get_json()
    sessions = client.get(f"{API}/api/v1/auth/sessions", headers=bearer(done.get_json()["access_token"])).get_json()
    assert [session["methods"] for session in sessions if session["current"]] == [["oauth", "mfa"]]


def login_with_mfa(client, device, email="ada@example.com"):
    first = client.post(f"{API}/api/v1/auth/login", json={"email": email, "password": PASSWORD}).get_json()
    done = client.post(f"{API}{MFA}/verify", json={"mfa_token": first["mfa_token"], "code": device.code()})
    return done.get_json()["access_token"]


# --- accounts that may not log in -----------------------------------------------------------------


def test_a_deactivated_account_cannot_sign_in_with_its_provider(browser, client, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    user = me(client, browser.tokens()["access_token"])
    db.session.execute(sa.update(User).where(User.id == user["id"]).values(is_active=False))
    db.session.commit()

    assert error_of(browser.sign_in()) == "account_disabled"
    assert len(users()) == 1


def test_a_code_of_an_account_deactivated_before_its_exchange_is_refused(social, fake_oidc):
    client = social()
    browser = Browser(client)
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    user_id = me(client, browser.tokens()["access_token"])["id"]
    code = browser.code()

    set_user_active(db.session.get(User, user_id), False)

    assert browser.exchange(code).status_code == 401


def test_a_deleted_account_is_never_signed_in_to_again(social, fake_oidc):
    client = social()
    register(client, "ada@example.com")
    token = login(client, "ada@example.com")["access_token"]
    link(Browser(client), client, token, fake_oidc, sub="u-ada")
    old_id = me(client, token)["id"]
    deleted = client.delete(ME, json={"current_password": PASSWORD}, headers=bearer(token))
    assert deleted.status_code == 204, deleted.get_json()
    assert identities() == []

    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    fresh = me(client, Browser(client).tokens()["access_token"])

    assert fresh["id"] != old_id  # a new account; the deleted one stays deleted
    assert db.session.get(User, old_id).deleted_at is not None


def test_another_packages_rule_refuses_a_sign_in_with_its_reason(browser, client, fake_oidc):
    """The hook issue 26's `sso_required` connects to: `login_checking`."""

    def sso_required(email, **_):
        if email.endswith("@acme.test"):
            raise LoginRefused("sso_required", "Acme requires its single sign-on.")

    register(client, "bob@acme.test")
    login_checking.connect(sso_required)
    try:
        fake_oidc.sign_in_as(sub="u-ada", email="ada@acme.test")
        assert error_of(browser.sign_in()) == "sso_required"
        password = client.post(f"{API}/api/v1/auth/login", json={"email": "bob@acme.test", "password": PASSWORD})
        assert password.status_code == 401
        assert password.get_json()["errors"]["reason"] == ["sso_required"]
        fake_oidc.sign_in_as(sub="u-cy", email="cy@example.com")
        assert set(front_end_params(browser.sign_in())) == {"code"}
    finally:
        login_checking.disconnect(sso_required)
    assert [user.email for user in users()] == ["bob@acme.test", "cy@example.com"]


# --- accounts without a password -------------------------------------------------------------


def test_an_account_made_by_a_provider_has_no_password_until_a_reset_sets_one(social, fake_oidc, smtp):
    client = social()
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    token = Browser(client).tokens()["access_token"]
    wrong = client.post(f"{API}/api/v1/auth/login", json={"email": "ada@example.com", "password": "anything at all"})
    unknown = client.post(f"{API}/api/v1/auth/login", json={"email": "nobody@example.com", "password": "anything at all"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json() == unknown.get_json()
    stored = db.session.scalar(sa.select(User.hashed_password).where(User.email == "ada@example.com"))
    assert not stored.startswith("$2")  # no bcrypt hash: nothing can match it
    assert client.post(f"{API}/api/v1/auth/login", json={"email": "ada@example.com", "password": stored}).status_code == 401

    assert client.post(f"{API}/api/v1/auth/password-reset", json={"email": "ada@example.com"}).status_code == 202
    reset_token = wait_for_mail(smtp, "ada@example.com").token
    confirmed = client.post(f"{API}/api/v1/auth/password-reset/confirm", json={"token": reset_token, "password": PASSWORD})
    assert confirmed.status_code == 204, confirmed.get_json()

    assert me(client, login(client, "ada@example.com")["access_token"])["has_password"] is True
    assert client.get(ME, headers=bearer(token)).status_code == 401  # the reset ended every session


@pytest.mark.parametrize("method, path, body", [
    ("patch", "/api/v1/users/me", {"password": "a brand new passphrase", "current_password": "a guess at nothing"}),
    ("post", "/api/v1/users/me/email", {"email": "ada.new@example.com", "current_password": "a guess at nothing"}),
    ("delete", "/api/v1/users/me", {"current_password": "a guess at nothing"}),
    ("post", "/api/v1/auth/mfa/totp/setup", {"current_password": "a guess at nothing"}),
], ids=["password change", "email change", "deletion", "two-factor setup"])
def test_actions_that_ask_for_the_password_say_to_set_one_first(client, fake_oidc, method, path, body):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    token = Browser(client).tokens()["access_token"]

    response = getattr(client, method)(f"{API}{path}", json=body, headers=bearer(token))

    assert response.status_code == 409, response.get_json()
    assert response.get_json()["errors"]["reason"] == ["password_not_set"]
    assert "password-reset" in response.get_json()["message"]
    assert me(client, token)["email"] == "ada@example.com"


def wait_for_mail(smtp, address, subject_has=""):
    return wait_for(lambda: [m for m in smtp.to(address) if subject_has in m.subject][-1:])[0]


# --- linking and unlinking ---------------------------------------------------------------------


def start_link(client, token, provider="oidc"):
    response = client.post(f"{API}/api/v1/users/me/identities/{provider}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["authorize_url"]


def link(browser, client, token, fake_oidc, sub, email="ada@example.com"):
    """Link an OpenID Connect identity to the account of ``token``: the confirmed identity."""
    fake_oidc.sign_in_as(sub=sub, email=email)
    params = front_end_params(browser.sign_in(authorize_url=start_link(client, token)))
    assert set(params) == {"link_code"}, params
    confirmed = client.post(f"{API}/api/v1/users/me/identities/confirm", json={"code": params["link_code"]},
                            headers=bearer(token))
    assert confirmed.status_code == 201, confirmed.get_json()
    return confirmed.get_json()


def test_linking_a_provider_from_the_settings(client, browser, fake_oidc, smtp):
    owner = register(client, "ada@example.com")
    token = login(client, "ada@example.com")["access_token"]
    authorize_url = start_link(client, token)
    assert authorize_url.startswith(f"{OAUTH}/oidc/authorize?intent=")
    fake_oidc.sign_in_as(sub="u-ada", email="ada.work@example.com")

    params = front_end_params(browser.sign_in(authorize_url=authorize_url))
    assert identities() == []  # nothing linked until the account confirms
    confirmed = client.post(f"{API}/api/v1/users/me/identities/confirm", json={"code": params["link_code"]},
                            headers=bearer(token))

    assert confirmed.status_code == 201
    identity = confirmed.get_json()
    assert set(identity) == {"id", "provider", "email", "created_at"}
    assert (identity["provider"], identity["email"]) == ("oidc", "ada.work@example.com")
    listed = client.get(f"{API}/api/v1/users/me/identities", headers=bearer(token)).get_json()
    assert listed == [identity]
    assert account_events(owner["id"])[-1] == ("oauth.identity_linked", {"provider": "oidc"})
    notice = wait_for_mail(smtp, "ada@example.com", "linked")
    assert "Acme SSO" in notice.subject and "Acme SSO" in notice.text
    # The identity now signs in to this account.
    assert me(client, Browser(client).tokens()["access_token"])["id"] == owner["id"]


def test_a_leaked_link_url_opened_by_someone_else_links_nothing(social, fake_oidc):
    client = social()
    register(client, "ada@example.com")
    register(client, "mallory@example.com")
    victim_token = login(client, "ada@example.com")["access_token"]
    mallory_token = login(client, "mallory@example.com")["access_token"]
    leaked = start_link(client, victim_token)
    mallory = Browser(social())
    fake_oidc.sign_in_as(sub="u-mallory", email="mallory@example.com")

    params = front_end_params(mallory.sign_in(authorize_url=leaked))
    as_mallory = client.post(f"{API}/api/v1/users/me/identities/confirm", json={"code": params["link_code"]},
                             headers=bearer(mallory_token))
    without_session = client.post(f"{API}/api/v1/users/me/identities/confirm", json={"code": params["link_code"]})

    assert as_mallory.status_code == 400 and without_session.status_code == 401
    assert identities() == []
    assert error_of(mallory.sign_in(authorize_url=leaked)) == "invalid_state"  # the intent works once


def test_a_link_code_works_once_and_not_after_a_security_change(client, browser, fake_oidc):
    register(client, "ada@example.com")
    token = login(client, "ada@example.com")["access_token"]
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    code = front_end_params(browser.sign_in(authorize_url=start_link(client, token)))["link_code"]
    other = front_end_params(browser.sign_in(authorize_url=start_link(client, token)))["link_code"]

    def confirm(link_code, access_token=token):
        return client.post(f"{API}/api/v1/users/me/identities/confirm", json={"code": link_code},
                           headers=bearer(access_token))

    assert confirm(changed_in_the_middle(code)).status_code == 400
    assert confirm(code).status_code == 201
    assert confirm(code).status_code == 400
    assert confirm(other).status_code == 409  # the same identity: linked now


def test_a_link_intent_dies_with_a_security_change(client, browser, fake_oidc):
    register(client, "ada@example.com")
    token = login(client, "ada@example.com")["access_token"]
    authorize_url = start_link(client, token)
    other_session = login(client, "ada@example.com")["access_token"]
    assert client.post(f"{API}/api/v1/auth/logout-all", headers=bearer(other_session)).status_code == 204
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")

    assert error_of(browser.sign_in(authorize_url=authorize_url)) == "invalid_state"


def test_an_identity_linked_to_another_account_is_in_use(social, fake_oidc):
    client = social()
    fake_oidc.sign_in_as(sub="u-shared", email="first@example.com")
    first = me(client, Browser(client).tokens()["access_token"])
    register(client, "second@example.com")
    token = login(client, "second@example.com")["access_token"]

    params = front_end_params(Browser(client).sign_in(authorize_url=start_link(client, token)))

    assert params == {"error": "identity_in_use"}
    assert [identity.user_id for identity in identities()] == [first["id"]]


def test_confirming_an_identity_linked_meanwhile_is_a_409(social, fake_oidc):
    client = social()
    register(client, "second@example.com")
    token = login(client, "second@example.com")["access_token"]
    fake_oidc.sign_in_as(sub="u-shared", email="first@example.com")
    link_code = front_end_params(Browser(client).sign_in(authorize_url=start_link(client, token)))["link_code"]
    first = me(client, Browser(client).tokens()["access_token"])  # the identity signs up meanwhile

    confirmed = client.post(f"{API}/api/v1/users/me/identities/confirm", json={"code": link_code}, headers=bearer(token))

    assert confirmed.status_code == 409
    assert confirmed.get_json()["errors"]["reason"] == ["identity_in_use"]
    assert [identity.user_id for identity in identities()] == [first["id"]]


def test_linking_a_provider_that_is_not_configured_is_a_404(client):
    register(client, "ada@example.com")
    token = login(client, "ada@example.com")["access_token"]

    assert client.post(f"{API}/api/v1/users/me/identities/google", headers=bearer(token)).status_code == 404


def test_unlinking_the_last_way_to_log_in_is_a_409(client, browser, fake_oidc, fake_github, smtp):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    token = browser.tokens()["access_token"]
    (only,) = client.get(f"{API}/api/v1/users/me/identities", headers=bearer(token)).get_json()

    refused = client.delete(f"{API}/api/v1/users/me/identities/{only['id']}", headers=bearer(token))

    assert refused.status_code == 409 and refused.get_json()["errors"]["reason"] == ["last_login_method"]
    fake_github.sign_in_as(id=5, login="ada", email="ada@example.com")
    params = front_end_params(Browser(client).sign_in("github", start_link(client, token, "github")))
    assert client.post(f"{API}/api/v1/users/me/identities/confirm", json={"code": params["link_code"]},
                       headers=bearer(token)).status_code == 201
    assert client.delete(f"{API}/api/v1/users/me/identities/{only['id']}", headers=bearer(token)).status_code == 204
    (github,) = client.get(f"{API}/api/v1/users/me/identities", headers=bearer(token)).get_json()
    assert github["provider"] == "github"
    assert client.delete(f"{API}/api/v1/users/me/identities/{github['id']}", headers=bearer(token)).status_code == 409
    user_id = me(client, token)["id"]
    assert [action for action, _ in account_events(user_id)] == [
        "oauth.signed_up", "oauth.identity_linked", "oauth.identity_unlinked"]
    assert "unlinked" in wait_for_mail(smtp, "ada@example.com", "unlinked").subject


def test_an_account_with_a_password_can_unlink_its_only_identity(client, browser, fake_oidc):
    register(client, "ada@example.com")
    token = login(client, "ada@example.com")["access_token"]
    identity = link(browser, client, token, fake_oidc, sub="u-ada")

    assert client.delete(f"{API}/api/v1/users/me/identities/{identity['id']}", headers=bearer(token)).status_code == 204
    assert identities() == []
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    assert error_of(Browser(client).sign_in()) == "account_exists"  # it no longer signs in


def test_another_accounts_identity_is_a_404(social, fake_oidc):
    client = social()
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    ada = Browser(client).tokens()["access_token"]
    (identity,) = client.get(f"{API}/api/v1/users/me/identities", headers=bearer(ada)).get_json()
    register(client, "bob@example.com")
    bob = login(client, "bob@example.com")["access_token"]

    assert client.delete(f"{API}/api/v1/users/me/identities/{identity['id']}", headers=bearer(bob)).status_code == 404
    assert client.get(f"{API}/api/v1/users/me/identities", headers=bearer(bob)).get_json() == []
    assert len(identities()) == 1


def test_the_account_export_lists_the_identities(client, browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    token = browser.tokens()["access_token"]

    export = client.get(f"{API}/api/v1/users/me/export", headers=bearer(token)).get_json()

    (identity,) = export["identities"]
    assert (identity["provider"], identity["subject"], identity["email"]) == ("oidc", "u-ada", "ada@example.com")


# --- housekeeping, limits, errors ----------------------------------------------------------------


def test_the_sweep_deletes_expired_flows_and_codes(browser, fake_oidc):
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    browser.code()  # a used state (gone) and a code
    browser.start()  # a state
    browser.start()
    db.session.execute(sa.update(OAuthCode).values(expires_at=sa.func.now() - sa.text("interval '1 second'")))
    db.session.execute(sa.update(OAuthState).values(expires_at=sa.func.now() - sa.text("interval '1 second'")))
    db.session.commit()
    browser.start()  # a live one stays

    outcome = sweep()

    assert outcome["expired_oauth_flows"] == {"states": 2, "codes": 1}
    assert len(db.session.scalars(sa.select(OAuthState)).all()) == 1
    assert db.session.scalars(sa.select(OAuthCode)).all() == []


def test_the_public_steps_are_rate_limited_per_address(social, fake_oidc):
    client = social(RATELIMIT_ENABLED="true", RATELIMIT_OAUTH_IP="2 per minute")
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")

    answers = [client.get(f"{OAUTH}/oidc/authorize").status_code for _ in range(3)]
    exchanges = [client.post(f"{OAUTH}/exchange", json={"code": "nothing"}).status_code for _ in range(3)]

    assert answers == [302, 302, 429] and exchanges == [401, 401, 429]
    assert client.get(f"{OAUTH}/oidc/callback?state=x&code=y").status_code == 302  # its own counter


def test_every_callback_error_is_documented(client):
    spec = client.get("/openapi.json").get_json()
    description = spec["paths"]["/api/v1/auth/oauth/{provider}/callback"]["get"]["description"]

    for reason in CALLBACK_ERRORS:
        assert f"`{reason}`" in description


def through_http(base, provider, cookie=None):
    """A browser without a cookie jar, over real HTTP: the authorize redirect, the provider, the
    callback (with the binding cookie unless ``cookie`` is False); ``(callback URL, front end's
    parameters, the Set-Cookie header)``."""
    start = requests.get(f"{base}/api/v1/auth/oauth/{provider}/authorize", allow_redirects=False, timeout=10)
    assert start.status_code == 302, start.text
    set_cookie = start.headers["Set-Cookie"]
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10).headers["Location"]
    headers = {"Cookie": set_cookie.split(";")[0]} if cookie is not False else {}
    done = requests.get(back, headers=headers, allow_redirects=False, timeout=10)
    assert done.status_code == 302 and done.headers["Location"].startswith(FRONT_END_CALLBACK + "?")
    return back, query_of(done.headers["Location"]), set_cookie


def test_sign_in_through_gunicorn_in_production(database, redis_url, fake_oidc, fake_github):
    """As production serves it: the cookie is Secure and __Host- prefixed, and both kinds of
    provider work. Without PUBLIC_API_URL the callback URL is the request's own."""
    settings = social_settings(fake_oidc, fake_github, PUBLIC_API_URL="")
    fake_oidc.sign_in_as(sub="u-ada", email="ada@example.com")
    fake_github.sign_in_as(id=77, login="grace", email="grace@example.com")
    with gunicorn(APP_ENV="production", REDIS_URL="", RATELIMIT_ENABLED="false", **settings) as server:
        base = str(server)
        fake_oidc.register_client(*OIDC_CLIENT, [f"{base}/api/v1/auth/oauth/oidc/callback"])
        fake_github.register_client(*GITHUB_CLIENT, [f"{base}/api/v1/auth/oauth/github/callback"])

        back, params, set_cookie = through_http(base, "oidc")
        attributes = {part.strip().split("=")[0] for part in set_cookie.split(";")}
        assert {"__Host-saas_oauth", "Secure", "HttpOnly", "SameSite", "Path"} <= attributes
        assert "Domain" not in attributes and "SameSite=Lax" in set_cookie and "Path=/;" in set_cookie + ";"
        assert query_of(back)["state"] and set(params) == {"code"}
        pair = requests.post(f"{base}/api/v1/auth/oauth/exchange", json=params, timeout=10)
        assert pair.status_code == 200 and pair.json()["token_type"] == "bearer"
        user = requests.get(f"{base}/api/v1/users/me", headers=bearer(pair.json()["access_token"]), timeout=10).json()
        assert (user["email"], user["has_password"]) == ("ada@example.com", False)
        assert requests.post(f"{base}/api/v1/auth/oauth/exchange", json=params, timeout=10).status_code == 401
        assert requests.get(back, headers={"Cookie": set_cookie.split(";")[0]}, allow_redirects=False,
                            timeout=10).headers["Location"].endswith("?error=invalid_state")  # replayed

        assert through_http(base, "oidc", cookie=False)[1] == {"error": "invalid_state"}  # another browser

        _, params, _ = through_http(base, "github")
        pair = requests.post(f"{base}/api/v1/auth/oauth/exchange", json=params, timeout=10)
        assert pair.status_code == 200
        user = requests.get(f"{base}/api/v1/users/me", headers=bearer(pair.json()["access_token"]), timeout=10).json()
        assert (user["email"], user["full_name"]) == ("grace@example.com", "grace")
