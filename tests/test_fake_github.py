"""Exercise tests/fake_github.py as the app will: Authlib's Flask client through GitHub's web flow
with PKCE (the 302s followed by hand), then the API's /user and /user/emails with the token."""
import subprocess
import sys
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests

from tests import oauth_support
from tests.fake_oauth import s256
from tests.oauth_support import REDIRECT_URI, refusal, sign_in

CLIENT_ID, CLIENT_SECRET = "Iv1.fake-client", "github-secret-for-the-fake"
VERIFIER = "a-code-verifier-long-enough-for-rfc-7636-abcdefghij"


def relying_party(github, scope="read:user user:email"):
    """Authlib's client registered for GitHub as the app will; the callback answers the token and
    what /user and /user/emails said."""
    def callback(remote):
        token = remote.authorize_access_token()
        user, emails = remote.get("user", token=token), remote.get("user/emails", token=token)
        return {"token": token, "user": user.json(), "emails": emails.json()}

    return oauth_support.relying_party(
        callback,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        authorize_url=f"{github.base_url}/login/oauth/authorize",
        access_token_url=f"{github.base_url}/login/oauth/access_token",
        api_base_url=f"{github.api_url}/",
        client_kwargs={"scope": scope, "code_challenge_method": "S256"},
    )


@pytest.fixture
def github(fake_github):
    fake_github.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
    fake_github.sign_in_as(id=4242, login="ada", name="Ada Lovelace", email="ada@example.com")
    return fake_github


def authorize(github, **overrides):
    params = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "scope": "read:user user:email",
              "state": "st-1", "code_challenge": s256(VERIFIER), "code_challenge_method": "S256", **overrides}
    return requests.get(f"{github.base_url}/login/oauth/authorize",
                        params={k: v for k, v in params.items() if v is not None}, allow_redirects=False, timeout=5)


def redirected_params(response):
    assert response.status_code == 302, response.text
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    return {name: values[0] for name, values in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def access_token_request(github, code, accept="application/json", **overrides):
    data = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER, **overrides}
    return requests.post(f"{github.base_url}/login/oauth/access_token",
                         data={k: v for k, v in data.items() if v is not None}, headers={"Accept": accept}, timeout=5)


def token_for(github, scope="read:user user:email"):
    code = redirected_params(authorize(github, scope=scope))["code"]
    return access_token_request(github, code).json()["access_token"]


def api(github, path, token, scheme="Bearer"):
    return requests.get(f"{github.api_url}{path}", headers={"Authorization": f"{scheme} {token}"}, timeout=5)


# -- the flow through Authlib ----------------------------------------------------------------


def test_authlib_logs_in_and_reads_the_user_and_their_addresses(github):
    answer = sign_in(relying_party(github))

    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["user"]["id"], body["user"]["login"], body["user"]["name"]) == (4242, "ada", "Ada Lovelace")
    assert body["user"]["email"] is None  # no public address: the login must read /user/emails
    assert body["emails"] == [{"email": "ada@example.com", "primary": True, "verified": True, "visibility": "private"}]
    assert body["token"]["token_type"] == "bearer" and body["token"]["access_token"].startswith("gho_")
    assert body["token"]["scope"] == "read:user,user:email"

    (authorize_request,) = github.requests_to("/login/oauth/authorize")
    (token_request,) = github.requests_to("/login/oauth/access_token", "POST")
    assert authorize_request.params["code_challenge_method"] == "S256"
    assert authorize_request.params["state"]
    assert s256(token_request.params["code_verifier"]) == authorize_request.params["code_challenge"]
    for call in github.requests_to("/user") + github.requests_to("/user/emails"):
        assert call.path.startswith("/api/v3/")
        assert call.headers["Authorization"] == f"Bearer {body['token']['access_token']}"


def test_authlib_sees_an_error_in_a_200_answer_as_an_error(github):
    rp = relying_party(github)
    login = rp.get("/login")
    query = urlsplit(requests.get(login.location, allow_redirects=False, timeout=5).headers["Location"]).query
    code = dict(parse_qsl(query))["code"]
    access_token_request(github, code)  # someone else spent the code first

    error, description = refusal(rp.get(f"/callback?{query}"))

    assert error == "OAuthError"
    assert "bad_verification_code" in description


def test_the_user_refusing_comes_back_as_access_denied(github):
    github.deny()

    params = redirected_params(authorize(github))

    assert (params["error"], params["state"]) == ("access_denied", "st-1")
    assert "code" not in params
    assert refusal(sign_in(relying_party(github)))[0] == "OAuthError"


# -- the access token endpoint, as GitHub answers it -----------------------------------------------------


def test_the_answer_is_json_when_asked_and_form_encoded_otherwise(github):
    code = redirected_params(authorize(github))["code"]
    as_form = access_token_request(github, code, accept="*/*")

    assert as_form.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    fields = dict(parse_qsl(as_form.text))
    assert fields["token_type"] == "bearer" and fields["scope"] == "read:user,user:email"
    assert api(github, "/user", fields["access_token"]).status_code == 200


@pytest.mark.parametrize("overrides, error", [
    ({"client_secret": "wrong-secret"}, "incorrect_client_credentials"),
    ({"client_secret": None}, "incorrect_client_credentials"),
    ({"code_verifier": "another-code-verifier-long-enough-for-rfc-7636-abcdefg"}, "bad_verification_code"),
    ({"code_verifier": None}, "bad_verification_code"),
    ({"redirect_uri": "http://localhost/elsewhere"}, "redirect_uri_mismatch"),
], ids=["wrong secret", "no secret", "wrong verifier", "no verifier", "other redirect_uri"])
def test_a_refused_exchange_is_a_200_with_an_error_and_no_token(github, overrides, error):
    code = redirected_params(authorize(github))["code"]

    response = access_token_request(github, code, **overrides)

    assert response.status_code == 200
    assert response.json()["error"] == error
    assert "access_token" not in response.json()


def test_a_code_works_once_and_not_after_it_expired(github):
    code = redirected_params(authorize(github))["code"]
    assert "access_token" in access_token_request(github, code).json()
    assert access_token_request(github, code).json()["error"] == "bad_verification_code"

    code = redirected_params(authorize(github))["code"]
    github.expire_codes()
    assert access_token_request(github, code).json()["error"] == "bad_verification_code"


def test_the_client_may_authenticate_with_http_basic(github):
    code = redirected_params(authorize(github))["code"]

    response = requests.post(f"{github.base_url}/login/oauth/access_token", auth=(CLIENT_ID, CLIENT_SECRET),
                             data={"code": code, "redirect_uri": REDIRECT_URI, "code_verifier": VERIFIER},
                             headers={"Accept": "application/json"}, timeout=5)

    assert response.json()["access_token"].startswith("gho_")


# -- the authorize endpoint's checks -------------------------------------------------------------


@pytest.mark.parametrize("overrides", [{"client_id": "Iv1.unknown"}, {"redirect_uri": "http://localhost/evil"}],
                         ids=["unknown client", "unregistered redirect_uri"])
def test_a_wrong_client_or_redirect_uri_is_never_redirected_to(github, overrides):
    response = authorize(github, **overrides)

    assert response.status_code == 400
    assert "Location" not in response.headers


@pytest.mark.parametrize("overrides", [{"state": None}, {"code_challenge": None}, {"code_challenge_method": "plain"}],
                         ids=["no state", "no challenge", "plain"])
def test_no_state_or_pkce_is_redirected_with_an_error_and_no_code(github, overrides):
    params = redirected_params(authorize(github, **overrides))

    assert params["error"] == "invalid_request"
    assert "code" not in params


def test_without_redirect_uri_the_registered_one_is_used_as_on_github(github):
    params = redirected_params(authorize(github, redirect_uri=None))

    assert access_token_request(github, params["code"], redirect_uri=None).json()["access_token"]


# -- the API ---------------------------------------------------------------------------------------


def test_the_api_takes_the_token_scheme_too_and_refuses_a_bad_token(github):
    token = token_for(github)

    assert api(github, "/user", token, scheme="token").json()["login"] == "ada"
    refused = api(github, "/user", token[:-6] + ("x" if token[-6] != "x" else "y") + token[-5:])
    assert refused.status_code == 401 and refused.json()["message"] == "Bad credentials"
    assert requests.get(f"{github.api_url}/user", timeout=5).status_code == 401


def test_the_addresses_need_the_user_email_scope(github):
    token = token_for(github, scope="read:user")

    response = api(github, "/user/emails", token)

    assert response.status_code == 404
    assert response.headers["X-OAuth-Scopes"] == "read:user"
    assert api(github, "/user", token).status_code == 200


def test_the_web_flow_and_the_api_live_at_their_own_urls(github):
    token = token_for(github)

    assert github.api_url == github.base_url + "/api/v3"
    assert api(github, "/user", token).status_code == 200
    assert requests.get(f"{github.base_url}/user", headers={"Authorization": f"Bearer {token}"},
                        timeout=5).status_code == 404
    assert requests.get(f"{github.api_url}/login/oauth/authorize", timeout=5).status_code == 404


def test_a_user_without_a_verified_primary_address(github):
    github.sign_in_as(id=7, login="eve", email="eve@example.com", email_verified=False)

    body = sign_in(relying_party(github)).get_json()

    assert body["emails"] == [{"email": "eve@example.com", "primary": True, "verified": False, "visibility": "private"}]


def test_any_set_of_addresses_and_a_public_one(github):
    emails = [
        {"email": "old@example.com", "primary": True, "verified": False, "visibility": "public"},
        {"email": "work@example.com", "primary": False, "verified": True, "visibility": None},
    ]
    github.sign_in_as(id=8, login="bob", name=None, emails=emails, public_email="old@example.com")

    body = sign_in(relying_party(github)).get_json()

    assert body["emails"] == emails
    assert (body["user"]["email"], body["user"]["name"]) == ("old@example.com", None)


def test_reset_forgets_the_user_the_clients_and_the_tokens(github):
    token = token_for(github)

    github.reset()

    assert github.clients == {} and github.user is None and github.requests == []
    assert api(github, "/user", token).status_code == 401


def test_a_subprocess_reaches_the_api(github):
    token = token_for(github)
    script = ("import requests, sys; headers = {'Authorization': 'token ' + sys.argv[2]}; "
              "print(requests.get(sys.argv[1], headers=headers, timeout=5).json()['login'])")

    result = subprocess.run([sys.executable, "-c", script, f"{github.api_url}/user", token],
                            capture_output=True, text=True, timeout=30, check=True)

    assert result.stdout.strip() == "ada"
