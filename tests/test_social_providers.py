"""Issue 23: what can be tested of Google and Microsoft without reaching them (their endpoints are
fixed public URLs): the configuration, the authorize redirect's parameters, and the ID-token
checks of each, run on real RS256 tokens that the fake OpenID Connect provider signs dressed as
theirs (their issuers, Microsoft's ``tid``), against the fake's key set. The flows themselves run
end to end in test_social_login.py against the fake provider and the fake GitHub."""
import secrets
from urllib.parse import urlsplit

import pytest
import requests

from config import Config, ConfigError
from saas.oauth.providers import GoogleProvider, MicrosoftProvider, OpenIDProvider, ProviderRefused, sha256
from tests.fake_oauth import s256
from tests.social_support import API, OAUTH, callback_url, query_of

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"
CLIENT_ID, CLIENT_SECRET = "provider-test-client", "provider-test-secret"
REDIRECT_URI = "https://api.example.test/callback"


def app_settings(**overrides):
    return {
        "OAUTH_PROVIDERS": "google,microsoft",
        "OAUTH_GOOGLE_CLIENT_ID": "google-client.apps.googleusercontent.com", "OAUTH_GOOGLE_CLIENT_SECRET": "g-secret",
        "OAUTH_MICROSOFT_CLIENT_ID": "00000000-aaaa-bbbb-cccc-000000000000", "OAUTH_MICROSOFT_CLIENT_SECRET": "m-secret",
        "PUBLIC_API_URL": API, **overrides,
    }


@pytest.mark.parametrize("provider, endpoint, client_id", [
    ("google", "https://accounts.google.com/o/oauth2/v2/auth", "google-client.apps.googleusercontent.com"),
    ("microsoft", "https://login.microsoftonline.com/common/oauth2/v2.0/authorize", "00000000-aaaa-bbbb-cccc-000000000000"),
])
def test_the_authorize_redirect_goes_to_the_providers_published_endpoint(app_with, provider, endpoint, client_id):
    client = app_with(**app_settings())

    response = client.get(f"{OAUTH}/{provider}/authorize")

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.split("?")[0] == endpoint
    params = query_of(location)
    assert params["client_id"] == client_id
    assert params["redirect_uri"] == callback_url(provider)
    assert (params["response_type"], params["scope"], params["code_challenge_method"]) == (
        "code", "openid email profile", "S256")
    assert params["state"] and params["nonce"] and params["code_challenge"]
    assert "client_secret" not in params


def test_a_microsoft_tenant_picks_its_authority(app_with):
    client = app_with(**app_settings(OAUTH_MICROSOFT_TENANT=TENANT))

    location = client.get(f"{OAUTH}/microsoft/authorize").headers["Location"]

    assert urlsplit(location).path == f"/{TENANT}/oauth2/v2.0/authorize"


def test_the_listing_names_google_and_microsoft(app_with):
    listed = app_with(**app_settings()).get(f"{OAUTH}/providers").get_json()

    assert [(p["name"], p["display_name"]) for p in listed] == [("google", "Google"), ("microsoft", "Microsoft")]


@pytest.mark.parametrize("settings, problem", [
    ({"OAUTH_PROVIDERS": "facebook"}, "unknown provider 'facebook'"),
    ({"OAUTH_PROVIDERS": "github"}, "OAUTH_GITHUB_CLIENT_ID and OAUTH_GITHUB_CLIENT_SECRET"),
    ({"OAUTH_PROVIDERS": "oidc", "OAUTH_OIDC_CLIENT_ID": "a", "OAUTH_OIDC_CLIENT_SECRET": "b"}, "OAUTH_OIDC_ISSUER"),
    ({"OAUTH_PROVIDERS": "oidc", "OAUTH_OIDC_CLIENT_ID": "a", "OAUTH_OIDC_CLIENT_SECRET": "b",
      "OAUTH_OIDC_ISSUER": "https://idp.example.test", "OAUTH_OIDC_SCOPES": "email profile"}, "OAUTH_OIDC_SCOPES"),
    ({"OAUTH_MICROSOFT_TENANT": "contoso.onmicrosoft.com"}, "OAUTH_MICROSOFT_TENANT"),
    ({"OAUTH_FRONTEND_CALLBACK_PATH": "oauth/callback"}, "OAUTH_FRONTEND_CALLBACK_PATH"),
    ({"APP_ENV": "production", "SECRET_KEY": "s" * 40, "OAUTH_PROVIDERS": "oidc", "OAUTH_OIDC_CLIENT_ID": "a",
      "OAUTH_OIDC_CLIENT_SECRET": "b", "OAUTH_OIDC_ISSUER": "http://idp.example.test"}, "must be an https URL"),
    ({"OAUTH_PROVIDERS": "github", "OAUTH_GITHUB_CLIENT_ID": "a", "OAUTH_GITHUB_CLIENT_SECRET": "b",
      "OAUTH_GITHUB_BASE_URL": "github.example.test"}, "OAUTH_GITHUB_BASE_URL is not an http(s) URL"),
], ids=["unknown", "no client", "no issuer", "no openid scope", "tenant domain", "relative path", "plain http",
        "not a URL"])
def test_settings_that_cannot_work_are_refused_at_start_naming_the_variable(settings, problem):
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        Config.from_env(settings).validate()


def test_production_accepts_a_loopback_provider_over_plain_http():
    Config.from_env({"APP_ENV": "production", "SECRET_KEY": "s" * 40, "OAUTH_PROVIDERS": "oidc",
                     "OAUTH_OIDC_CLIENT_ID": "a", "OAUTH_OIDC_CLIENT_SECRET": "b",
                     "OAUTH_OIDC_ISSUER": "http://127.0.0.1:8080/realms/dev"}).validate()


# --- ID tokens dressed as Google's and Microsoft's ---------------------------------------------------


@pytest.fixture
def idp(fake_oidc):
    fake_oidc.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    return fake_oidc


def id_token_from(provider, *, issuer, audience=None, **claims):
    """A real ID token of the fake provider, signed with its key, carrying ``issuer`` (and
    ``audience``, when given) and ``claims``: ``(id_token, access_token, nonce)``."""
    provider.sign_in_as(sub=claims.pop("sub", "person-1"), email=claims.pop("email", "ada@contoso.test"),
                        email_verified=claims.pop("email_verified", None), **claims)
    provider.forge_id_tokens(issuer=issuer, audience=audience)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(32)
    authorized = requests.get(f"{provider.issuer}/authorize", params={
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "scope": "openid email",
        "state": "s", "nonce": nonce, "code_challenge": s256(verifier), "code_challenge_method": "S256",
    }, allow_redirects=False, timeout=5)
    code = query_of(authorized.headers["Location"])["code"]
    tokens = requests.post(f"{provider.issuer}/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
    }, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5).json()
    return tokens["id_token"], tokens["access_token"], nonce


def check(provider, idp, id_token, access_token, nonce):
    return provider.verified_claims(id_token, nonce_hash=sha256(nonce), access_token=access_token, key_set=idp.jwks())


def microsoft(tenant="common"):
    return MicrosoftProvider(CLIENT_ID, CLIENT_SECRET, tenant=tenant, timeout=5)


def test_microsoft_common_accepts_a_token_whose_issuer_names_its_own_tenant(idp):
    token = id_token_from(idp, issuer=f"https://login.microsoftonline.com/{TENANT}/v2.0", tid=TENANT)
    provider = microsoft()

    claims = check(provider, idp, *token)

    assert claims["tid"] == TENANT
    assert provider.identity_issuer(claims) == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert provider.issuer == "https://login.microsoftonline.com/{tenantid}/v2.0"


@pytest.mark.parametrize("issuer, claims", [
    (f"https://login.microsoftonline.com/{TENANT}/v2.0", {"tid": OTHER_TENANT}),
    (f"https://login.microsoftonline.com/{TENANT}/v2.0", {}),
    ("https://login.microsoftonline.com/{tenantid}/v2.0", {"tid": TENANT}),
    ("https://login.microsoftonline.com/common/v2.0", {"tid": "common"}),
    (f"https://login.microsoftonline.com/{TENANT}/v2.0/x", {"tid": f"{TENANT}/v2.0/x"}),
    (f"https://sts.windows.net/{TENANT}/", {"tid": TENANT}),
    (f"https://evil.example.test/{TENANT}/v2.0", {"tid": TENANT}),
], ids=["tid of another tenant", "no tid", "the template itself", "tid not a GUID", "tid with a path",
        "v1 issuer", "another host"])
def test_microsoft_common_refuses_an_issuer_that_is_not_the_template_filled_with_the_tokens_tid(idp, issuer, claims):
    token = id_token_from(idp, issuer=issuer, **claims)

    with pytest.raises(ProviderRefused, match="iss"):
        check(microsoft(), idp, *token)


def test_a_microsoft_tenant_accepts_only_its_own_tokens(idp):
    provider = microsoft(TENANT)
    own = id_token_from(idp, issuer=f"https://login.microsoftonline.com/{TENANT}/v2.0", tid=TENANT)
    assert check(provider, idp, *own)["tid"] == TENANT

    other = id_token_from(idp, issuer=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0", tid=OTHER_TENANT)
    with pytest.raises(ProviderRefused, match="iss"):
        check(provider, idp, *other)


def test_microsoft_consumers_accepts_only_personal_accounts(idp):
    provider = microsoft("consumers")
    personal = id_token_from(idp, issuer=f"https://login.microsoftonline.com/{CONSUMERS}/v2.0", tid=CONSUMERS)
    assert check(provider, idp, *personal)

    work = id_token_from(idp, issuer=f"https://login.microsoftonline.com/{TENANT}/v2.0", tid=TENANT)
    with pytest.raises(ProviderRefused):
        check(provider, idp, *work)


@pytest.mark.parametrize("claims, verified", [
    ({}, False),
    ({"xms_edov": True}, True),
    ({"email_verified": True}, True),
    ({"xms_edov": False}, False),
], ids=["email claim alone", "domain owner verified", "email_verified", "xms_edov false"])
def test_microsoft_vouches_for_an_address_only_with_xms_edov_or_email_verified(idp, claims, verified):
    token = id_token_from(idp, issuer=f"https://login.microsoftonline.com/{TENANT}/v2.0", tid=TENANT, **claims)
    provider = microsoft()

    assert provider.email_verified(check(provider, idp, *token)) is verified


def test_microsoft_refuses_another_applications_token(idp):
    token = id_token_from(idp, issuer=f"https://login.microsoftonline.com/{TENANT}/v2.0", tid=TENANT)
    provider = MicrosoftProvider("another-application", CLIENT_SECRET, tenant="common", timeout=5)

    with pytest.raises(ProviderRefused, match="aud"):
        check(provider, idp, *token)


@pytest.mark.parametrize("issuer", ["https://accounts.google.com", "accounts.google.com"])
def test_google_accepts_both_spellings_of_its_issuer(idp, issuer):
    token = id_token_from(idp, issuer=issuer, email_verified=True)
    provider = GoogleProvider(CLIENT_ID, CLIENT_SECRET, timeout=5)

    claims = check(provider, idp, *token)

    assert provider.identity_issuer(claims) == "https://accounts.google.com"
    assert provider.email_verified(claims) is True


@pytest.mark.parametrize("issuer", ["https://accounts.google.com.evil.test", "http://accounts.google.com", "google.com"])
def test_google_refuses_any_other_issuer(idp, issuer):
    token = id_token_from(idp, issuer=issuer)

    with pytest.raises(ProviderRefused, match="iss"):
        check(GoogleProvider(CLIENT_ID, CLIENT_SECRET, timeout=5), idp, *token)


def test_a_token_checked_with_another_nonce_is_refused(idp):
    id_token, access_token, _ = id_token_from(idp, issuer=idp.issuer)
    provider = OpenIDProvider(idp.issuer, CLIENT_ID, CLIENT_SECRET, display_name="x", scopes=["openid"], timeout=5)

    with pytest.raises(ProviderRefused, match="nonce"):
        check(provider, idp, id_token, access_token, "a-nonce-of-another-sign-in")


def test_an_access_token_that_does_not_match_at_hash_is_refused(idp):
    id_token, _, nonce = id_token_from(idp, issuer=idp.issuer)
    provider = OpenIDProvider(idp.issuer, CLIENT_ID, CLIENT_SECRET, display_name="x", scopes=["openid"], timeout=5)

    with pytest.raises(ProviderRefused, match="at_hash"):
        check(provider, idp, id_token, "an-access-token-from-elsewhere", nonce)


def test_a_token_for_another_audience_is_refused_even_if_it_names_us_its_authorized_party(idp):
    id_token, access_token, nonce = id_token_from(idp, issuer=idp.issuer, audience="another-client", azp=CLIENT_ID)
    provider = OpenIDProvider(idp.issuer, CLIENT_ID, CLIENT_SECRET, display_name="x", scopes=["openid"], timeout=5)

    with pytest.raises(ProviderRefused, match="aud"):
        check(provider, idp, id_token, access_token, nonce)
