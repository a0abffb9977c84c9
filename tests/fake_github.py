"""A fake GitHub for tests: the OAuth web flow and the two API calls a login needs, over HTTP.

Laid out as GitHub Enterprise Server is: the web flow at ``base_url`` and the REST API at
``api_url`` (``base_url`` + "/api/v3"), so an app that calls the API on the base URL, or the web
flow on the API URL, gets a 404 here as it would from github.com. The app is pointed at it with
``OAUTH_GITHUB_BASE_URL=fake.base_url`` and ``OAUTH_GITHUB_API_URL=fake.api_url``::

    github.register_client("Iv1.test", "secret", ["http://127.0.0.1:5000/api/v1/auth/oauth/github/callback"])
    github.sign_in_as(id=42, login="ada", name="Ada", email="ada@example.com")

- ``GET /login/oauth/authorize``: client_id, redirect_uri (exact match; GitHub's default, the
  first registered one, when left out), scope, state, PKCE S256; approves the signed-in user and
  redirects with ``code`` and ``state``, or with ``error=access_denied`` after ``deny()``.
- ``POST /login/oauth/access_token``: client_id and client_secret (form fields or HTTP Basic),
  code, redirect_uri, code_verifier. Answers JSON when ``Accept: application/json``, else
  form-encoded, as GitHub does; and like GitHub, a bad code, secret or verifier is a 200 whose body
  carries ``error`` (``bad_verification_code``, ``incorrect_client_credentials``,
  ``redirect_uri_mismatch``). The token's scope is the requested one, comma-separated.
- API ``GET /user`` (id, login, name, ``email``: the public address, null unless ``public_email``
  is given) and ``GET /user/emails`` (email, primary, verified, visibility; 404 unless the token
  has the ``user:email`` or ``user`` scope, as on GitHub), with ``Authorization: Bearer <token>`` or
  ``token <token>``; 401 "Bad credentials" otherwise.

Knobs (cleared by ``reset()``): ``sign_in_as(..., email_verified=False)`` (no verified primary
address), ``sign_in_as(..., emails=[...])`` (any set of addresses), ``public_email``, ``deny()``,
``expire_codes()`` and ``mode``, as in tests/fake_oauth.py.
"""
from __future__ import annotations

from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from tests.fake_oauth import FakeOAuthServer, OAuthProblem, json_response

API_PREFIX = "/api/v3"
DOCS = "https://docs.github.com/rest"
EMAIL_SCOPES = {"user", "user:email"}


class FakeGitHub(FakeOAuthServer):
    """Fake GitHub web flow and REST API; see the module docstring."""

    NAME = "fake-github"
    DENIED_DESCRIPTION = "The user has denied your application access."
    ERROR_EXTRAS = {"error_uri": "https://docs.github.com/apps/troubleshooting-authorization-requests"}

    def __init__(self, clients=()):
        super().__init__(clients)
        self.reset()

    @property
    def base_url(self) -> str:
        return self.url

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    # -- test helpers --------------------------------------------------------

    def sign_in_as(self, id: int, login: str, name: str | None = None, email: str | None = None,
                   email_verified: bool = True, emails: list | None = None, public_email: str | None = None) -> None:
        """The user the next authorize requests approve. ``emails`` (dicts with email, primary, verified,
        visibility) replaces the default list: ``email`` alone, primary, verified as ``email_verified``."""
        if emails is None:
            emails = [] if email is None else [
                {"email": email, "primary": True, "verified": email_verified, "visibility": "private"}
            ]
        with self._lock:
            self.user = {"id": id, "login": login, "name": name, "public_email": public_email,
                         "emails": [dict(entry) for entry in emails]}

    # -- web flow --------------------------------------------------------------

    def _answer(self, request: Request, params: dict) -> Response:
        route = (request.method, request.path)
        if route == ("GET", "/login/oauth/authorize"):
            return self._authorize(params)
        if route == ("POST", "/login/oauth/access_token"):
            return self._access_token(request, params)
        if request.method == "GET" and request.path in (f"{API_PREFIX}/user", f"{API_PREFIX}/user/emails"):
            return self._api(request)
        return self._api_error(404, "Not Found")

    def _check_authorize(self, params: dict):
        client = self.clients.get(params.get("client_id", ""))
        if client is not None and not params.get("redirect_uri"):
            params["redirect_uri"] = client.redirect_uris[0]  # GitHub's default: the registered callback
        return super()._check_authorize(params)

    def _requested_scope(self, params: dict) -> tuple:
        return tuple(params.get("scope", "").replace(",", " ").split())

    def _access_token(self, request: Request, params: dict) -> Response:
        if request.is_json:
            params = {**params, **{k: str(v) for k, v in (request.get_json(silent=True) or {}).items()}}
        try:
            client = self._authenticate_client(request, params)
            if params.get("redirect_uri") is None:
                params = {**params, "redirect_uri": client.redirect_uris[0]}
            grant = self._redeem_code(client, params)
        except OAuthProblem as problem:
            if problem.error == "invalid_client":
                error = "incorrect_client_credentials"
            else:
                error = "redirect_uri_mismatch" if problem.reason == "redirect_uri" else "bad_verification_code"
            body = {"error": error, "error_description": problem.description,
                    "error_uri": "https://docs.github.com/apps/troubleshooting-oauth-app-access-token-request-errors"}
        else:
            body = {"access_token": self._issue_access_token(grant, prefix="gho_"), "token_type": "bearer",
                    "scope": ",".join(grant.scope)}
        # GitHub answers errors here with a 200 too: a client must look for "error" in the body.
        if "application/json" in request.headers.get("Accept", ""):
            return json_response(body)
        return Response(urlencode(body), content_type="application/x-www-form-urlencoded; charset=utf-8")

    # -- REST API --------------------------------------------------------------

    def _api(self, request: Request) -> Response:
        token = self._bearer(request, schemes=("bearer", "token"))
        if token is None:
            return self._api_error(401, "Bad credentials")
        headers = {"X-OAuth-Scopes": ", ".join(token.scope), "X-GitHub-Media-Type": "github.v3"}
        user = token.user
        if request.path.endswith("/user/emails"):
            headers["X-Accepted-OAuth-Scopes"] = "user, user:email"
            if not EMAIL_SCOPES & set(token.scope):
                return self._api_error(404, "Not Found", headers)
            return json_response(user["emails"], headers=headers)
        headers["X-Accepted-OAuth-Scopes"] = ""
        return json_response({
            "login": user["login"],
            "id": user["id"],
            "node_id": f"U_fake{user['id']}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user['id']}?v=4",
            "html_url": f"https://github.com/{user['login']}",
            "type": "User",
            "site_admin": False,
            "name": user["name"],
            "email": user["public_email"],
        }, headers=headers)

    @staticmethod
    def _api_error(status: int, message: str, headers: dict | None = None) -> Response:
        return json_response({"message": message, "documentation_url": DOCS, "status": str(status)}, status, headers)
