"""What the fake OAuth 2 providers share (tests/fake_oidc.py, tests/fake_github.py).

The authorization-code grant with PKCE, as RFC 6749 and RFC 7636 say and real providers enforce it:
registered clients (``register_client``), an authorize step that checks the client, the exact
redirect URI, ``state`` and an S256 ``code_challenge`` and then "approves" the user the test signed
in (``sign_in_as`` in each provider) with no page in between; codes that are single-use (any
redemption attempt spends one), short-lived (``CODE_LIFETIME``; ``expire_codes()`` ages the
outstanding ones) and bound to the client, redirect URI, scope, nonce and challenge; client
authentication by HTTP Basic or form fields; access tokens for the provider's API.

Every request is recorded (``requests``, ``requests_to``). ``deny()`` makes the next authorize
requests answer with an error instead of a code. ``mode`` simulates outages as the other fakes do:
"ok", "down" (500), "unavailable" (connection closed without an answer), "slow" (answer after
``delay`` seconds). ``reset()`` forgets everything a test did.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from werkzeug.wrappers import Request, Response

from tests.fake_server import LoopbackServer


class RecordedRequest(NamedTuple):
    """One request as the fake saw it; ``params`` are the query string and the form body together."""

    method: str
    path: str
    params: dict
    headers: dict


class Client(NamedTuple):
    client_id: str
    client_secret: str
    redirect_uris: tuple


class OAuthProblem(Exception):
    """An OAuth error answer: ``error`` and ``description`` as RFC 6749 names them, the status, and
    which check failed (``reason``), for providers that name errors their own way."""

    def __init__(self, error: str, description: str, status: int = 400, reason: str = ""):
        super().__init__(description)
        self.error, self.description, self.status, self.reason = error, description, status, reason


@dataclass
class Grant:
    """What an authorization code stands for."""

    client_id: str
    redirect_uri: str
    scope: tuple
    code_challenge: str
    nonce: str | None
    user: dict
    expires_at: float


@dataclass
class AccessToken:
    client_id: str
    scope: tuple
    user: dict
    expires_at: float


def s256(code_verifier: str) -> str:
    """The PKCE S256 challenge of a verifier: BASE64URL(SHA-256(verifier)), unpadded."""
    return b64url(hashlib.sha256(code_verifier.encode("ascii")).digest())


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def with_query(uri: str, params: dict) -> str:
    """``uri`` with ``params`` added to its query string (values that are None left out)."""
    parts = urlsplit(uri)
    extra = urlencode({name: value for name, value in params.items() if value is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(json.dumps(body), status=status, content_type="application/json")
    response.headers.update(headers or {})
    return response


class FakeOAuthServer(LoopbackServer):
    """The shared machinery; subclasses route requests in ``_answer`` (``_authorize`` serves the authorize
    endpoint, with the provider's own checks in ``_requested_scope``) and build user records."""

    CODE_LIFETIME = 60
    TOKEN_LIFETIME = 3600
    DENIED_DESCRIPTION = "The resource owner denied the request."
    ERROR_EXTRAS: dict = {}  # added to each error redirect

    def __init__(self, clients=()):
        super().__init__()
        self._default_clients = tuple(Client(c[0], c[1], tuple(c[2])) for c in clients)
        self.requests: list[RecordedRequest] = []
        self.clients: dict[str, Client] = {}
        self._grants: dict[str, Grant] = {}
        self._tokens: dict[str, AccessToken] = {}

    def reset(self) -> None:
        """Forget recorded requests, codes, tokens, the signed-in user, denials and clients registered
        since the start (those given to the constructor stay); mode back to "ok"."""
        with self._lock:
            super().reset()
            self.requests.clear()
            self._grants.clear()
            self._tokens.clear()
            self.clients.clear()
            self.clients.update({client.client_id: client for client in self._default_clients})
            self.user = None
            self.denial = None

    # -- test helpers --------------------------------------------------------

    def register_client(self, client_id: str, client_secret: str, redirect_uris) -> Client:
        """Register a client (until the next reset); redirect URIs are matched exactly."""
        if isinstance(redirect_uris, str):
            redirect_uris = (redirect_uris,)
        client = Client(client_id, client_secret, tuple(redirect_uris))
        with self._lock:
            self.clients[client_id] = client
        return client

    def deny(self, error: str = "access_denied", description: str | None = None) -> None:
        """Answer authorize requests with ``error`` (redirected, with the state) instead of a code."""
        with self._lock:
            self.denial = (error, description or self.DENIED_DESCRIPTION)

    def expire_codes(self) -> None:
        """Age every outstanding authorization code past its lifetime."""
        with self._lock:
            for grant in self._grants.values():
                grant.expires_at = 0

    def requests_to(self, path_suffix: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path ends with ``path_suffix`` (and with this method, if given)."""
        with self._lock:
            return [
                r for r in self.requests
                if r.path.endswith(path_suffix) and (method is None or r.method == method.upper())
            ]

    # -- the authorization-code grant --------------------------------------------

    def _authorize(self, params: dict) -> Response:
        """The authorize endpoint: a redirect with a code for the signed-in user, or with an error."""
        try:
            client, redirect_uri = self._check_authorize(params)
        except OAuthProblem as problem:
            return self._problem_page(problem)
        try:
            scope = self._requested_scope(params)
            self._check_pkce_and_state(params)
            if self.denial:
                raise OAuthProblem(*self.denial)
        except OAuthProblem as problem:
            error = {"error": problem.error, "error_description": problem.description, **self.ERROR_EXTRAS}
            return self._redirect(redirect_uri, {**error, "state": params.get("state")})
        if self.user is None:
            return self._problem_page(OAuthProblem("login_required", "No user signed in: call sign_in_as() first."))
        return self._redirect(redirect_uri, {"code": self._issue_code(client, redirect_uri, params, scope),
                                             "state": params["state"]})

    def _requested_scope(self, params: dict) -> tuple:
        """The scope asked for, after the provider's own checks of the request (OAuthProblem when refused)."""
        return tuple(params.get("scope", "").split())

    def _check_authorize(self, params: dict) -> tuple[Client, str]:
        """The client and redirect URI, which must be right before anything is redirected (RFC 6749
        4.1.2.1: a wrong one is told to the user, never sent to an unchecked URI)."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise OAuthProblem("invalid_client", "Unknown client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            raise OAuthProblem("invalid_request", f"redirect_uri {redirect_uri!r} is not registered for this client.")
        return client, redirect_uri

    def _check_pkce_and_state(self, params: dict) -> None:
        if not params.get("state"):
            raise OAuthProblem("invalid_request", "state is required.")
        if not params.get("code_challenge"):
            raise OAuthProblem("invalid_request", "code_challenge is required (PKCE).")
        if params.get("code_challenge_method") != "S256":
            raise OAuthProblem("invalid_request", "code_challenge_method must be S256.")

    def _issue_code(self, client: Client, redirect_uri: str, params: dict, scope: tuple) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[code] = Grant(
                client_id=client.client_id,
                redirect_uri=redirect_uri,
                scope=scope,
                code_challenge=params["code_challenge"],
                nonce=params.get("nonce"),
                user=dict(self.user),
                expires_at=time.time() + self.CODE_LIFETIME,
            )
        return code

    def _authenticate_client(self, request: Request, params: dict) -> Client:
        """HTTP Basic (client_secret_basic, form-encoded id and secret) or form fields (client_secret_post)."""
        authorization = request.authorization
        if authorization is not None and authorization.type == "basic":
            client_id = unquote_plus(authorization.username or "")
            secret = unquote_plus(authorization.password or "")
        else:
            client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret.encode(), secret.encode()):
            raise OAuthProblem("invalid_client", "Client authentication failed.", status=401)
        return client

    def _redeem_code(self, client: Client, params: dict) -> Grant:
        if not params.get("code"):
            raise OAuthProblem("invalid_request", "code is required.")
        with self._lock:
            grant = self._grants.pop(params["code"], None)  # single-use: any attempt spends it
        if grant is None or grant.client_id != client.client_id:
            raise OAuthProblem("invalid_grant", "The code is unknown, used, or was issued to another client.")
        if grant.expires_at <= time.time():
            raise OAuthProblem("invalid_grant", "The code has expired.")
        if params.get("redirect_uri") != grant.redirect_uri:
            raise OAuthProblem("invalid_grant", "redirect_uri differs from the authorization request's.",
                               reason="redirect_uri")
        verifier = params.get("code_verifier") or ""
        if not secrets.compare_digest(s256(verifier), grant.code_challenge):
            raise OAuthProblem("invalid_grant", "code_verifier does not match the code_challenge (PKCE).")
        return grant

    def _issue_access_token(self, grant: Grant, prefix: str = "") -> str:
        token = prefix + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = AccessToken(
                grant.client_id, grant.scope, grant.user, time.time() + self.TOKEN_LIFETIME
            )
        return token

    def _bearer(self, request: Request, schemes=("bearer",)) -> AccessToken | None:
        """The live access token of an ``Authorization: <scheme> <token>`` header, or None."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in schemes:
            return None
        with self._lock:
            token = self._tokens.get(value.strip())
        return token if token is not None and token.expires_at > time.time() else None

    # -- WSGI plumbing -------------------------------------------------------

    def _wsgi(self, environ, start_response):
        request = Request(environ)
        params = request.args.to_dict()
        if request.method == "POST":
            params.update(request.form.to_dict())
        with self._lock:
            self.requests.append(RecordedRequest(request.method, request.path, dict(params), dict(request.headers)))
            generation, mode = self._generation, self.mode
        self._act_out_outage(environ, mode, generation)
        if mode == "down":
            response = json_response({"error": "server_error", "error_description": "Down on purpose."}, 500)
        else:
            response = self._answer(request, params)
        return response(environ, start_response)

    def _answer(self, request: Request, params: dict) -> Response:
        raise NotImplementedError

    @staticmethod
    def _problem_page(problem: OAuthProblem) -> Response:
        """What the provider shows the user instead of redirecting (bad client or redirect URI)."""
        return Response(f"{problem.error}: {problem.description}", status=problem.status, content_type="text/plain")

    @staticmethod
    def _redirect(uri: str, params: dict) -> Response:
        return Response(status=302, headers={"Location": with_query(uri, params)})
