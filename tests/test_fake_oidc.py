"""Exercise tests/fake_oidc.py as the app will: Authlib's Flask client doing discovery, authorize
(the provider's 302 followed by hand, as a browser would), the token exchange with PKCE and the
ID-token checks against the JWKS; then each knob that a relying party must refuse."""
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from tests import oauth_support
from tests.fake_oauth import s256
from tests.fake_oidc import OTHER_ISSUER, FakeOIDCProvider
from tests.oauth_support import REDIRECT_URI, refusal, sign_in

CLIENT_ID, CLIENT_SECRET = "saas-test", "s3cret-for-the-fake"
VERIFIER = "a-code-verifier-long-enough-for-rfc-7636-0123456789"


def relying_party(provider, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, **client_kwargs):
    """Authlib's client registered for ``provider`` by its discovery URL; the callback answers the
    ID token's claims, the userinfo and the token."""
    def callback(remote):
        # Authlib checks "aud" only when told to (without it, only through "azp"); "iss" is the discovered one.
        claims_options = {"iss": {"essential": True, "values": [remote.load_server_metadata()["issuer"]]},
                          "aud": {"essential": True, "values": [client_id]}}
        token = remote.authorize_access_token(claims_options=claims_options)
        return {"claims": dict(token["userinfo"]), "userinfo": dict(remote.userinfo(token=token)), "token": token}

    return oauth_support.relying_party(
        callback,
        client_id=client_id,
        client_secret=client_secret,
        server_metadata_url=f"{provider.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256", **client_kwargs},
    )


@pytest.fixture
def idp(fake_idp):
    fake_idp.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    fake_idp.sign_in_as(sub="u-ada", email="ada@acme.test", email_verified=True, name="Ada Lovelace")
    return fake_idp


def authorize(provider, **overrides):
    """An authorize request by hand: the provider's answer (not followed)."""
    params = {
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "scope": "openid email",
        "state": "st-1", "nonce": "n-1", "code_challenge": s256(VERIFIER), "code_challenge_method": "S256",
        **overrides,
    }
    return requests.get(f"{provider.issuer}/authorize", params={k: v for k, v in params.items() if v is not None},
                        allow_redirects=False, timeout=5)


def redirected_params(response):
    assert response.status_code == 302, response.text
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    return {name: values[0] for name, values in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def code_from(provider, **overrides):
    return redirected_params(authorize(provider, **overrides))["code"]


def exchange(provider, code, auth=(CLIENT_ID, CLIENT_SECRET), **overrides):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER, **overrides}
    return requests.post(f"{provider.issuer}/token", data={k: v for k, v in data.items() if v is not None},
                         auth=auth, timeout=5)


def error_of(response, status=400):
    assert response.status_code == status, response.text
    return response.json()["error"]


# -- the flow through Authlib --------------------------------------------------------


def test_authlib_logs_in_with_discovery_pkce_and_a_verified_id_token(idp):
    answer = sign_in(relying_party(idp))

    assert answer.status_code == 200, answer.get_json()
    claims, userinfo, token = answer.get_json()["claims"], answer.get_json()["userinfo"], answer.get_json()["token"]
    assert claims["iss"] == idp.issuer and idp.issuer.endswith("/realms/acme")
    assert claims["aud"] == CLIENT_ID
    assert (claims["sub"], claims["email"], claims["email_verified"], claims["name"]) == (
        "u-ada", "ada@acme.test", True, "Ada Lovelace")
    assert claims["exp"] > claims["iat"]
    assert userinfo == {"sub": "u-ada", "email": "ada@acme.test", "email_verified": True, "name": "Ada Lovelace"}
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0

    (authorize_request,) = idp.requests_to("/authorize")
    (token_request,) = idp.requests_to("/token", "POST")
    assert authorize_request.params["code_challenge_method"] == "S256"
    assert authorize_request.params["nonce"] == claims["nonce"]
    assert s256(token_request.params["code_verifier"]) == authorize_request.params["code_challenge"]
    assert token_request.headers["Authorization"].startswith("Basic ")  # Authlib's default client_secret_basic
    header = jwt.get_unverified_header(token["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] in {key["kid"] for key in idp.jwks()["keys"]}


def test_discovery_names_the_endpoints_and_what_the_provider_supports(idp):
    document = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=5).json()

    assert document["issuer"] == idp.issuer
    for endpoint, path in [("authorization_endpoint", "/authorize"), ("token_endpoint", "/token"),
                           ("jwks_uri", "/jwks"), ("userinfo_endpoint", "/userinfo")]:
        assert document[endpoint] == idp.issuer + path
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}
    assert {"openid", "email", "profile"} <= set(document["scopes_supported"])
    assert {"email", "email_verified", "name"} <= set(document["claims_supported"])
    assert document["response_types_supported"] == ["code"]
    server_root = idp.issuer.removesuffix("/realms/acme")
    assert requests.get(f"{server_root}/.well-known/openid-configuration", timeout=5).status_code == 404


def test_client_secret_post_is_accepted_too(idp):
    answer = sign_in(relying_party(idp, token_endpoint_auth_method="client_secret_post"))

    assert answer.status_code == 200, answer.get_json()
    (token_request,) = idp.requests_to("/token", "POST")
    assert "Authorization" not in token_request.headers
    assert token_request.params["client_secret"] == CLIENT_SECRET


def test_the_user_refusing_comes_back_as_access_denied(idp):
    idp.deny()

    assert refusal(sign_in(relying_party(idp)))[0] == "OAuthError"
    params = redirected_params(authorize(idp))
    assert (params["error"], params["state"]) == ("access_denied", "st-1")
    assert "code" not in params


def test_scopes_decide_which_claims_are_released(idp):
    code = code_from(idp, scope="openid")

    token = exchange(idp, code).json()
    claims = jwt.decode(token["id_token"], options={"verify_signature": False})
    assert claims["sub"] == "u-ada" and "email" not in claims and "name" not in claims
    userinfo = requests.get(f"{idp.issuer}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"},
                            timeout=5)
    assert userinfo.json() == {"sub": "u-ada"}


def test_userinfo_needs_a_valid_access_token(idp):
    response = requests.get(f"{idp.issuer}/userinfo", headers={"Authorization": "Bearer not-a-token"}, timeout=5)

    assert error_of(response, 401) == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# -- the authorize endpoint's checks ---------------------------------------------------------


@pytest.mark.parametrize("overrides", [
    {"client_id": "unknown-client"},
    {"redirect_uri": "http://localhost/callback/../evil"},
    {"redirect_uri": "http://localhost/callback?x=1"},
    {"redirect_uri": None},
], ids=["unknown client", "other path", "extra query", "no redirect_uri"])
def test_a_wrong_client_or_redirect_uri_is_never_redirected_to(idp, overrides):
    response = authorize(idp, **overrides)

    assert response.status_code == 400
    assert "Location" not in response.headers


@pytest.mark.parametrize("overrides, error", [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "email profile"}, "invalid_scope"),
    ({"state": None}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
], ids=["implicit", "no openid", "no state", "no challenge", "no method", "plain"])
def test_a_bad_authorize_request_is_redirected_with_an_error_and_no_code(idp, overrides, error):
    params = redirected_params(authorize(idp, **overrides))

    assert params["error"] == error
    assert "code" not in params


def test_no_signed_in_user_is_a_loud_failure_not_a_login(fake_idp):
    fake_idp.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])

    response = authorize(fake_idp)

    assert response.status_code == 400 and "sign_in_as" in response.text


# -- the token endpoint's checks -------------------------------------------------------------


def test_a_code_works_once(idp):
    code = code_from(idp)

    assert exchange(idp, code).status_code == 200
    assert error_of(exchange(idp, code)) == "invalid_grant"


def test_an_expired_code_is_refused(idp):
    code = code_from(idp)
    idp.expire_codes()

    assert error_of(exchange(idp, code)) == "invalid_grant"


@pytest.mark.parametrize("overrides", [
    {"code_verifier": "another-code-verifier-long-enough-for-rfc-7636-0123456"},
    {"code_verifier": None},
    {"redirect_uri": "http://localhost/other-callback"},
], ids=["wrong verifier", "no verifier", "other redirect_uri"])
def test_a_code_needs_its_verifier_and_redirect_uri(idp, overrides):
    code = code_from(idp)

    assert error_of(exchange(idp, code, **overrides)) == "invalid_grant"
    assert error_of(exchange(idp, code)) == "invalid_grant"  # the failed attempt spent it


def test_an_unknown_code_is_refused(idp):
    code = code_from(idp)

    assert error_of(exchange(idp, code[:10] + ("x" if code[10] != "x" else "y") + code[11:])) == "invalid_grant"
    assert error_of(exchange(idp, "")) == "invalid_request"
    assert exchange(idp, code).status_code == 200


def test_a_code_is_bound_to_its_client(idp):
    idp.register_client("other-client", "other-secret", [REDIRECT_URI])
    code = code_from(idp)

    assert error_of(exchange(idp, code, auth=("other-client", "other-secret"))) == "invalid_grant"


@pytest.mark.parametrize("auth, data", [
    ((CLIENT_ID, "wrong-secret"), {}),
    (None, {"client_id": CLIENT_ID, "client_secret": "wrong-secret"}),
    (None, {"client_id": CLIENT_ID}),
    (("nobody", CLIENT_SECRET), {}),
], ids=["basic", "post", "no secret", "unknown client"])
def test_a_wrong_client_secret_is_invalid_client(idp, auth, data):
    code = code_from(idp)

    response = exchange(idp, code, auth=auth, **data)

    assert error_of(response, 401) == "invalid_client"
    assert "id_token" not in response.text


def test_only_the_authorization_code_grant_is_served(idp):
    assert error_of(exchange(idp, code_from(idp), grant_type="client_credentials")) == "unsupported_grant_type"


def test_the_id_token_binds_the_nonce_and_the_access_token(idp):
    token = exchange(idp, code_from(idp, nonce="nonce-42")).json()

    signing_key = jwt.PyJWKClient(f"{idp.issuer}/jwks").get_signing_key_from_jwt(token["id_token"])
    claims = jwt.decode(token["id_token"], signing_key.key, algorithms=["RS256"], audience=CLIENT_ID,
                        issuer=idp.issuer)
    assert claims["nonce"] == "nonce-42"
    assert claims["at_hash"]
    assert token["scope"] == "openid email"


# -- ID tokens a relying party must refuse ---------------------------------------------------------


@pytest.mark.parametrize("fault, error, claim", [
    ({"foreign_key": True}, "BadSignatureError", None),
    ({"unsigned": True}, "UnsupportedAlgorithmError", None),
    ({"audience": "someone-elses-client"}, "InvalidClaimError", "aud"),
    ({"issuer": OTHER_ISSUER}, "InvalidClaimError", "iss"),
    ({"nonce": "a-nonce-from-another-login"}, "InvalidClaimError", "nonce"),
    ({"expired": True}, "ExpiredTokenError", None),
], ids=["foreign key", "unsigned", "audience", "issuer", "nonce", "expired"])
def test_authlib_refuses_each_forged_id_token(idp, fault, error, claim):
    rp = relying_party(idp)
    idp.forge_id_tokens(**fault)

    refused, description = refusal(sign_in(rp))

    assert refused == error
    if claim:
        assert f"'{claim}'" in description
    idp.reset()
    idp.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    idp.sign_in_as(sub="u-ada", email="ada@acme.test")
    assert sign_in(rp).status_code == 200  # the same relying party logs in once the fault is gone


def test_a_foreign_key_token_carries_the_real_kid_and_fails_only_on_the_signature(idp):
    idp.forge_id_tokens(foreign_key=True)
    id_token = exchange(idp, code_from(idp)).json()["id_token"]

    (published,) = idp.jwks()["keys"]
    assert jwt.get_unverified_header(id_token)["kid"] == published["kid"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(id_token, jwt.PyJWK(published).key, algorithms=["RS256"], audience=CLIENT_ID)


def test_an_unverified_email_is_passed_on_as_unverified(idp):
    idp.sign_in_as(sub="u-eve", email="eve@acme.test", email_verified=False)

    claims = sign_in(relying_party(idp)).get_json()["claims"]

    assert (claims["email"], claims["email_verified"]) == ("eve@acme.test", False)


def test_a_rotated_key_is_published_and_a_cached_jwks_is_refreshed(idp):
    rp = relying_party(idp)
    assert sign_in(rp).status_code == 200
    old_kid = idp.jwks()["keys"][0]["kid"]

    new_kid = idp.rotate_key()

    assert [key["kid"] for key in idp.jwks()["keys"]] == [new_kid, old_kid]
    answer = sign_in(rp)
    assert answer.status_code == 200, answer.get_json()
    assert jwt.get_unverified_header(answer.get_json()["token"]["id_token"])["kid"] == new_kid
    assert len(idp.requests_to("/jwks")) == 2  # Authlib fetched the set again for the unknown kid
    idp.reset()
    assert [key["kid"] for key in idp.jwks()["keys"]] == [old_kid]


# -- discovery a relying party must refuse ---------------------------------------------------


def test_a_discovery_document_naming_another_issuer(idp):
    idp.discovery = "other_issuer"

    document = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=5).json()

    assert document["issuer"] == OTHER_ISSUER != idp.issuer
    refused, description = refusal(sign_in(relying_party(idp)))  # Authlib then refuses the real issuer's token
    assert (refused, "'iss'" in description) == ("InvalidClaimError", True)


@pytest.mark.parametrize("discovery, error", [
    ("invalid_json", "JSONDecodeError"),
    ("not_found", "HTTPError"),
    ("unavailable", "ConnectionError"),
])
def test_a_broken_discovery_document_stops_the_login_before_the_provider(idp, discovery, error):
    idp.discovery = discovery

    assert refusal(relying_party(idp).get("/login"))[0] == error
    assert idp.requests_to("/authorize") == []


def test_a_provider_that_is_down(idp):
    idp.mode = "down"

    response = requests.get(f"{idp.issuer}/jwks", timeout=5)

    assert error_of(response, 500) == "server_error"


# -- several providers at once ------------------------------------------------------------------


def test_providers_are_independent(idp, second_fake_idp, fake_oidc):
    assert len({idp.issuer, second_fake_idp.issuer, fake_oidc.issuer}) == 3
    assert len({p.jwks()["keys"][0]["kid"] for p in (idp, second_fake_idp, fake_oidc)}) == 3
    second_fake_idp.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    second_fake_idp.sign_in_as(sub="u-bob", email="bob@globex.test")
    token = exchange(second_fake_idp, code_from(second_fake_idp)).json()

    with pytest.raises(jwt.PyJWKClientError):  # its kid is in no other provider's JWKS
        jwt.PyJWKClient(f"{idp.issuer}/jwks").get_signing_key_from_jwt(token["id_token"])
    assert authorize(fake_oidc).status_code == 400  # the client is registered at one provider only
    assert [r.path for r in idp.requests] == ["/realms/acme/jwks"]


def test_a_client_given_to_the_constructor_survives_reset():
    with FakeOIDCProvider(clients=[(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])]) as provider:
        provider.register_client("for-one-test", "x", [REDIRECT_URI])
        provider.sign_in_as(sub="u-1", email="one@example.test")
        provider.reset()

        assert set(provider.clients) == {CLIENT_ID}
        assert provider.user is None and provider.requests == []


def test_a_subprocess_reaches_the_provider(idp):
    """gunicorn and the worker are other processes: they reach the fake through its loopback URL."""
    script = "import requests, sys; print(requests.get(sys.argv[1], timeout=5).json()['issuer'])"

    result = subprocess.run([sys.executable, "-c", script, f"{idp.issuer}/.well-known/openid-configuration"],
                            capture_output=True, text=True, timeout=30, check=True)

    assert result.stdout.strip() == idp.issuer
