"""A fake OpenID Connect provider for tests: discovery, authorize, token, JWKS and userinfo over HTTP.

The app's OAuth client (Authlib) is pointed at it through its issuer URL, so discovery, PKCE,
client authentication and ID-token validation all run for real; only the provider is fake.
Several instances run at once, each with its own issuer, RSA signing key and clients::

    idp = FakeOIDCProvider(path="/realms/acme").start()   # issuer http://127.0.0.1:<port>/realms/acme
    idp.register_client("saas", "secret", ["http://127.0.0.1:5000/api/v1/auth/sso/callback"])
    idp.sign_in_as(sub="u-1", email="ada@acme.test", email_verified=True, name="Ada")
    # settings: OAUTH_OIDC_ISSUER=idp.issuer (or the SSO connection's "issuer")

Endpoints, below the issuer: ``/.well-known/openid-configuration``, ``/authorize`` (checks the
client, the exact redirect URI, ``response_type=code``, the ``openid`` scope, ``state`` and an S256
``code_challenge``, then redirects with ``code`` and ``state`` for the signed-in user: no page),
``/token`` (authorization_code grant, client_secret_basic or client_secret_post, PKCE checked; RFC
6749 errors: 401 ``invalid_client``, 400 ``invalid_grant``...), ``/jwks`` and ``/userinfo``. The
RS256 ID token carries iss, sub, aud, iat, exp, auth_time, nonce (when the authorize request sent
one), at_hash and, by scope, email and email_verified (``email``) and name (``profile``), plus any
extra claims given to ``sign_in_as``; its ``kid`` header names the JWKS key.

Knobs for the negative tests, each cleared by ``reset()``:

- ``sign_in_as(..., email_verified=False)``: the provider does not vouch for the address.
- ``deny()``: the user refuses (``error=access_denied`` at the redirect URI).
- ``forge_id_tokens(foreign_key=True)``: signed by a key that is not in the JWKS (with the real
  key's ``kid``); ``unsigned=True``: ``alg: none``; ``audience=``, ``issuer=``, ``nonce=``: those
  claims replaced; ``expired=True``: issued an hour ago, expired half an hour ago.
- ``discovery``: "ok", "other_issuer" (the document names ``OTHER_ISSUER``, not this issuer),
  "invalid_json", "not_found" (404), "unavailable" (connection closed without an answer).
- ``rotate_key()``: a new signing key, published next to the old one.
- ``mode`` ("down", "unavailable", "slow") and ``expire_codes()``: see tests/fake_oauth.py.
"""
from __future__ import annotations

import hashlib
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from werkzeug.wrappers import Request, Response

from tests.fake_oauth import FakeOAuthServer, OAuthProblem, b64url, json_response

OTHER_ISSUER = "https://idp.other.test/realms/someone-else"
SUPPORTED_SCOPES = ("openid", "email", "profile")
ID_TOKEN_LIFETIME = 300


def new_signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey) -> dict:
    """The public half as a JWK, its ``kid`` the RFC 7638 thumbprint."""
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    canonical = json.dumps({name: jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
    return {**jwk, "kid": b64url(hashlib.sha256(canonical.encode()).digest()), "use": "sig", "alg": "RS256"}


class FakeOIDCProvider(FakeOAuthServer):
    """Fake OpenID Connect provider; see the module docstring."""

    NAME = "fake-oidc"
    _foreign_key = None  # one attacker's key for every instance: made once, on first use

    def __init__(self, path: str = "", clients=()):
        """``path``: the issuer's path (e.g. "/realms/acme"), or "" for the bare host.
        ``clients``: (client_id, client_secret, redirect_uris) registered for good."""
        super().__init__(clients)
        self.URL_SUFFIX = path.rstrip("/")
        self._first_key = new_signing_key()
        self.reset()

    def reset(self) -> None:
        """Also: the first signing key only, discovery "ok", no forged ID tokens."""
        with self._lock:
            super().reset()
            self.keys = [self._first_key]
            self.discovery = "ok"
            self.id_token_faults = {}

    @property
    def issuer(self) -> str:
        return self.url

    # -- test helpers --------------------------------------------------------

    def sign_in_as(self, sub: str, email: str | None = None, email_verified: bool = True, name: str | None = None,
                   **claims) -> None:
        """The user the next authorize requests approve; ``claims`` are added to the ID token and userinfo."""
        with self._lock:
            self.user = {"sub": sub, "email": email, "email_verified": email_verified, "name": name, **claims}

    def forge_id_tokens(self, *, foreign_key: bool = False, unsigned: bool = False, audience=None,
                        issuer: str | None = None, nonce: str | None = None, expired: bool = False) -> None:
        """Make the token endpoint hand out ID tokens that a relying party must refuse; see the module docstring."""
        faults = {"foreign_key": foreign_key, "unsigned": unsigned, "aud": audience, "iss": issuer,
                  "nonce": nonce, "expired": expired}
        with self._lock:
            self.id_token_faults = {name: value for name, value in faults.items() if value}

    def rotate_key(self) -> str:
        """Sign with a new key from now on; the JWKS lists it first and keeps the old ones. Returns its kid."""
        key = new_signing_key()
        with self._lock:
            self.keys.insert(0, key)
        return public_jwk(key)["kid"]

    def jwks(self) -> dict:
        with self._lock:
            return {"keys": [public_jwk(key) for key in self.keys]}

    def metadata(self) -> dict:
        """The discovery document."""
        issuer = self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "scopes_supported": list(SUPPORTED_SCOPES),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                                 "email", "email_verified", "name"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
        }

    # -- endpoints -----------------------------------------------------------

    def _answer(self, request: Request, params: dict) -> Response:
        if not request.path.startswith(self.URL_SUFFIX + "/"):
            return json_response({"error": "not_found"}, 404)
        route = (request.method, request.path[len(self.URL_SUFFIX):])
        if route == ("GET", "/.well-known/openid-configuration"):
            return self._discovery(request)
        if route == ("GET", "/authorize"):
            return self._authorize(params)
        if route == ("POST", "/token"):
            return self._token(request, params)
        if route == ("GET", "/jwks"):
            return json_response(self.jwks())
        if route in (("GET", "/userinfo"), ("POST", "/userinfo")):
            return self._userinfo(request)
        return json_response({"error": "not_found"}, 404)

    def _discovery(self, request: Request) -> Response:
        discovery = self.discovery
        if discovery == "unavailable":
            self._drop_connection(request.environ)
        if discovery == "not_found":
            return json_response({"error": "not_found"}, 404)
        if discovery == "invalid_json":
            return Response("<html><body>Welcome to nginx!</body></html>", content_type="application/json")
        document = self.metadata()
        if discovery == "other_issuer":
            document["issuer"] = OTHER_ISSUER
        return json_response(document)

    def _requested_scope(self, params: dict) -> tuple:
        if params.get("response_type") != "code":
            raise OAuthProblem("unsupported_response_type", "Only response_type=code is supported.")
        scope = super()._requested_scope(params)
        if "openid" not in scope:
            raise OAuthProblem("invalid_scope", "The openid scope is required.")
        return scope

    def _token(self, request: Request, params: dict) -> Response:
        try:
            client = self._authenticate_client(request, params)
            if params.get("grant_type") != "authorization_code":
                raise OAuthProblem("unsupported_grant_type", "Only the authorization_code grant is supported.")
            grant = self._redeem_code(client, params)
        except OAuthProblem as problem:
            headers = {"WWW-Authenticate": 'Basic realm="token"'} if problem.status == 401 else {}
            return json_response({"error": problem.error, "error_description": problem.description},
                                 problem.status, headers)
        access_token = self._issue_access_token(grant)
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.TOKEN_LIFETIME,
            "scope": " ".join(grant.scope),
            "id_token": self._id_token(grant, access_token),
        }
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _userinfo(self, request: Request) -> Response:
        token = self._bearer(request)
        if token is None:
            return json_response({"error": "invalid_token"}, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return json_response(self._user_claims(token.user, token.scope))

    # -- ID tokens ------------------------------------------------------------

    @staticmethod
    def _user_claims(user: dict, scope: tuple) -> dict:
        """The user's claims that ``scope`` releases, as OpenID Connect Core 5.4 maps them."""
        released = {name: value for name, value in user.items() if name not in ("email", "email_verified", "name")}
        if "email" in scope and user.get("email") is not None:
            released.update(email=user["email"], email_verified=bool(user["email_verified"]))
        if "profile" in scope and user.get("name") is not None:
            released["name"] = user["name"]
        return released

    def _id_token(self, grant, access_token: str) -> str:
        now = int(time.time())
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims = {
            **self._user_claims(grant.user, grant.scope),
            "iss": self.issuer,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME,
            "auth_time": now,
            "at_hash": b64url(digest[: len(digest) // 2]),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        faults = dict(self.id_token_faults)
        claims.update({name: faults[name] for name in ("aud", "iss", "nonce") if name in faults})
        if faults.get("expired"):
            claims.update(iat=now - 3600, auth_time=now - 3600, exp=now - 1800)
        key = self.keys[0]
        header = {"kid": public_jwk(key)["kid"]}
        if faults.get("unsigned"):
            return jwt.encode(claims, None, algorithm="none", headers=header)
        if faults.get("foreign_key"):
            key = self._attacker_key()
        return jwt.encode(claims, key, algorithm="RS256", headers=header)

    @classmethod
    def _attacker_key(cls) -> rsa.RSAPrivateKey:
        if cls._foreign_key is None:
            FakeOIDCProvider._foreign_key = new_signing_key()
        return cls._foreign_key
