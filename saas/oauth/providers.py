"""The identity providers: where a browser is sent to sign in, and what the provider's answer proves.

- **OpenID Connect** (``oidc``, Google, Microsoft): the authorization-code flow with PKCE (S256) and
  a nonce. The ID token comes from the token endpoint (Authlib's ``OAuth2Session``) and is checked
  against the provider's key set (joserfc, as Authlib's own client does): a signature by one of
  its keys with an asymmetric algorithm (never ``none`` or a shared-secret one), then Authlib's
  OpenID Connect rules (``CodeIDToken``: ``exp``/``iat`` with a minute of leeway, ``azp``,
  ``at_hash``) with ``iss`` and ``aud`` made essential (Authlib checks neither unless told), and
  the nonce of this flow. ``oidc`` finds its endpoints by discovery, whose ``issuer`` must be the
  configured one exactly (Authlib never compares them); Google's and Microsoft's endpoints are
  their published ones, built in.
- **Microsoft**'s ``common`` and ``organizations`` authorities sign tokens whose ``iss`` names the
  user's own directory: its issuer is the template ``https://login.microsoftonline.com/{tenantid}/v2.0``,
  and a token is accepted only when its ``iss`` is that template filled with the token's own
  ``tid`` (a GUID). A directory's own tenant id makes the issuer fixed.
- **GitHub** (or GitHub Enterprise Server): the OAuth web flow with PKCE, then the REST API's
  ``/user`` (the stable numeric id) and ``/user/emails`` (the primary address counts only when
  GitHub has verified it).

Discovery documents and key sets are cached per process for an hour; a token signed by a key the
cached set lacks fetches the set again, once (key rotation). The provider's access token serves
this one sign-in and is forgotten.
"""
import hmac
import logging
import re
import threading
import time
from dataclasses import dataclass

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from email_validator import EmailNotValidError
from joserfc import jwt
from joserfc.errors import InvalidClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from config import OAUTH_PROVIDER_NAMES
from saas.core.emails import normalize_email
from saas.core.secrets import sha256

log = logging.getLogger(__name__)

GOOGLE, GITHUB, MICROSOFT, OIDC = PROVIDER_NAMES = OAUTH_PROVIDER_NAMES  # what OAUTH_PROVIDERS may name
# Signature algorithms an ID token may use: asymmetric ones, so that no one holding our client
# secret (or nothing at all: "none") can sign one.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_LEEWAY_SECONDS = 60
CACHE_SECONDS = 3600
TENANT_PLACEHOLDER = "{tenantid}"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ProviderUnavailable(Exception):
    """The provider could not be reached, timed out, or answered with a server error."""


class ProviderRefused(Exception):
    """The provider answered, but not with anything that proves who signed in: an error, a code it
    would not exchange, an ID token that fails a check, a discovery document for another issuer."""


@dataclass(frozen=True)
class ProviderIdentity:
    """Who signed in, as the provider vouches for it. ``email`` is normalised (or None)."""

    provider: str
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def _json_answer(url, send):
    """The JSON document ``send()`` answers for ``url``; ProviderUnavailable or ProviderRefused
    when there is none."""
    try:
        response = send()
    except requests.RequestException as error:
        raise ProviderUnavailable(f"GET {url}: {error.__class__.__name__}") from None
    if response.status_code >= 500:
        raise ProviderUnavailable(f"GET {url} answered {response.status_code}")
    if response.status_code != 200:
        raise ProviderRefused(f"GET {url} answered {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise ProviderRefused(f"GET {url} did not answer JSON") from None


def _fetch_json(url, timeout):
    return _json_answer(url, lambda: requests.get(url, timeout=timeout, headers={"Accept": "application/json"}))


class _Cached:
    """A value fetched now and then, shared by the process's threads."""

    def __init__(self, fetch):
        self._fetch = fetch
        self._lock = threading.Lock()
        self._value, self._fetched_at = None, 0.0

    def get(self, fresh=False):
        with self._lock:
            if fresh or self._value is None or time.monotonic() - self._fetched_at > CACHE_SECONDS:
                self._value, self._fetched_at = self._fetch(), time.monotonic()
            return self._value


class Provider:
    """What every provider does: send a browser to sign in, and turn its answer into a
    ``ProviderIdentity``. ``name`` is the provider's path segment and identities' ``provider``."""

    name = ""
    display_name = ""
    scopes = ()
    uses_nonce = True

    def __init__(self, client_id, client_secret, timeout):
        self.client_id, self.client_secret, self.timeout = client_id, client_secret, timeout

    def _session(self, **kwargs):
        return OAuth2Session(
            self.client_id, self.client_secret, scope=" ".join(self.scopes), code_challenge_method="S256",
            default_timeout=self.timeout, **kwargs,
        )

    def authorization_url(self, *, redirect_uri, state, code_verifier, nonce=None):
        """The provider's sign-in page for this flow: its state, PKCE challenge and nonce."""
        extra = {"nonce": nonce} if self.uses_nonce else {}
        with self._session(redirect_uri=redirect_uri) as session:
            url, _ = session.create_authorization_url(
                self.endpoints()["authorization_endpoint"], state=state, code_verifier=code_verifier, **extra
            )
        return url

    def _tokens(self, session, *, code, redirect_uri, code_verifier):
        """The token endpoint's answer to the authorization code (the PKCE verifier proves the flow)."""
        try:
            return session.fetch_token(
                self.endpoints()["token_endpoint"], grant_type="authorization_code", code=code,
                redirect_uri=redirect_uri, code_verifier=code_verifier,
            )
        except OAuthError as error:
            raise ProviderRefused(f"the token endpoint refused the code: {error.error}") from None
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else 0
            problem = ProviderUnavailable if status >= 500 else ProviderRefused
            raise problem(f"the token endpoint answered {status}") from None
        except requests.RequestException as error:
            raise ProviderUnavailable(f"the token endpoint: {error.__class__.__name__}") from None
        except ValueError as error:  # a 2xx that is not a JSON object
            raise ProviderRefused(f"the token endpoint: {error}") from None

    def endpoints(self):
        raise NotImplementedError

    def identity(self, *, code, redirect_uri, code_verifier, nonce_hash=None):
        raise NotImplementedError


class OpenIDProvider(Provider):
    """Any OpenID Connect provider, found by discovery at ``<issuer>/.well-known/openid-configuration``."""

    name = OIDC

    def __init__(self, issuer, client_id, client_secret, *, display_name, scopes, timeout):
        super().__init__(client_id, client_secret, timeout)
        self.issuer = issuer  # as configured: compared exactly (Auth0's ends with a slash)
        self.display_name = display_name
        self.scopes = tuple(scopes)
        self._metadata = _Cached(self._discover)
        self._keys = _Cached(lambda: _fetch_json(self.endpoints()["jwks_uri"], self.timeout))

    def _discover(self):
        # OpenID Connect Discovery 1.0, section 4: the issuer without its trailing slash.
        document = _fetch_json(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration", self.timeout)
        if not isinstance(document, dict):
            raise ProviderRefused("the discovery document is not a JSON object")
        if document.get("issuer") != self.issuer:
            raise ProviderRefused(f"the discovery document names the issuer {document.get('issuer')!r}, not {self.issuer!r}")
        missing = [name for name in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(name)]
        if missing:
            raise ProviderRefused(f"the discovery document has no {', '.join(missing)}")
        return document

    def endpoints(self):
        return self._metadata.get()

    def accepted_issuers(self, claims):
        """The ``iss`` values a token of this provider may carry."""
        return [self.issuer]

    def identity_issuer(self, claims):
        """The issuer an identity of this provider is filed under."""
        return self.issuer

    def email_verified(self, claims):
        return claims.get("email_verified") in (True, "true")

    def signing_algorithms(self):
        advertised = self.endpoints().get("id_token_signing_alg_values_supported") or ["RS256"]
        return [algorithm for algorithm in advertised if algorithm in ASYMMETRIC_ALGORITHMS] or ["RS256"]

    def identity(self, *, code, redirect_uri, code_verifier, nonce_hash=None):
        with self._session(redirect_uri=redirect_uri) as session:
            tokens = self._tokens(session, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier)
        if not isinstance(tokens.get("id_token"), str):
            raise ProviderRefused("the token endpoint answered no ID token")
        claims = self.verified_claims(tokens["id_token"], nonce_hash=nonce_hash, access_token=tokens.get("access_token"))
        try:
            email = normalize_email(claims["email"]) if isinstance(claims.get("email"), str) else None
        except EmailNotValidError:
            email = None
        name = claims.get("name")[:255] if isinstance(claims.get("name"), str) else None
        return ProviderIdentity(
            provider=self.name, issuer=self.identity_issuer(claims), subject=claims["sub"], email=email,
            email_verified=email is not None and self.email_verified(claims), name=name,
        )

    def verified_claims(self, id_token, *, nonce_hash, access_token=None, key_set=None):
        """The claims of ``id_token`` once every check passed; ProviderRefused otherwise.
        ``key_set`` (a JWKS document) is the provider's, fetched when not given."""
        try:
            token = self._decode(id_token, key_set)
            issuers = self.accepted_issuers(token.claims)
            if not issuers:  # an empty list would let joserfc accept any issuer
                raise InvalidClaimError("iss")
            claims = CodeIDToken(
                token.claims, token.header,
                {"iss": {"essential": True, "values": issuers},
                 "aud": {"essential": True, "values": [self.client_id]}},
                {"client_id": self.client_id, "access_token": access_token},
            )
            claims.validate(leeway=CLOCK_LEEWAY_SECONDS)
            if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(sha256(claims["nonce"]), nonce_hash or ""):
                raise InvalidClaimError("nonce")
            if not isinstance(claims.get("sub"), str) or not 0 < len(claims["sub"]) <= 255:
                raise InvalidClaimError("sub")
        except JoseError as error:
            raise ProviderRefused(f"the ID token was refused: {error.__class__.__name__} {error}") from None
        return dict(claims)

    def _decode(self, id_token, key_set):
        registry = JWSRegistry(algorithms=self.signing_algorithms(), strict_check_header=False)
        keys = key_set if key_set is not None else self._keys.get()
        try:
            return jwt.decode(id_token, KeySet.import_key_set(keys), registry=registry)
        except InvalidKeyIdError:
            if key_set is not None:
                raise
            # Signed by a key our copy of the set lacks: the provider rotated its keys.
            return jwt.decode(id_token, KeySet.import_key_set(self._keys.get(fresh=True)), registry=registry)


class GoogleProvider(OpenIDProvider):
    """Google's published endpoints (https://accounts.google.com/.well-known/openid-configuration)."""

    name = GOOGLE
    ISSUER = "https://accounts.google.com"
    ENDPOINTS = {
        "issuer": ISSUER,
        "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_endpoint": "https://oauth2.googleapis.com/token",
        "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
        "id_token_signing_alg_values_supported": ["RS256"],
    }

    def __init__(self, client_id, client_secret, *, timeout):
        super().__init__(self.ISSUER, client_id, client_secret, display_name="Google",
                         scopes=("openid", "email", "profile"), timeout=timeout)

    def endpoints(self):
        return self.ENDPOINTS

    def accepted_issuers(self, claims):
        # Google's documentation: "The value of iss in the ID token is equal to
        # accounts.google.com or https://accounts.google.com."
        return [self.ISSUER, "accounts.google.com"]


class MicrosoftProvider(OpenIDProvider):
    """Microsoft Entra ID (work and school accounts) and personal Microsoft accounts, through the
    v2.0 endpoints of ``OAUTH_MICROSOFT_TENANT``."""

    name = MICROSOFT
    AUTHORITY = "https://login.microsoftonline.com"
    MULTI_TENANT = ("common", "organizations")
    # The directory of personal Microsoft accounts: what the `consumers` authority's tokens name.
    CONSUMERS_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"

    def __init__(self, client_id, client_secret, *, tenant, timeout):
        self.tenant = tenant.lower()
        directory = {"consumers": self.CONSUMERS_TENANT_ID}.get(self.tenant, self.tenant)
        if self.tenant in self.MULTI_TENANT:
            directory = TENANT_PLACEHOLDER
        super().__init__(f"{self.AUTHORITY}/{directory}/v2.0", client_id, client_secret, display_name="Microsoft",
                         scopes=("openid", "email", "profile"), timeout=timeout)
        base = f"{self.AUTHORITY}/{self.tenant}"
        self._endpoints = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def endpoints(self):
        return self._endpoints

    def accepted_issuers(self, claims):
        """The issuer, with the template's ``{tenantid}`` filled with the token's own ``tid``
        (which must be a directory id): never a check skipped."""
        if TENANT_PLACEHOLDER not in self.issuer:
            return [self.issuer]
        tenant_id = claims.get("tid")
        if not isinstance(tenant_id, str) or not _GUID.match(tenant_id):
            return []  # no issuer is acceptable: the token is refused
        return [self.issuer.replace(TENANT_PLACEHOLDER, tenant_id)]

    def identity_issuer(self, claims):
        return self.accepted_issuers(claims)[0]

    def email_verified(self, claims):
        """Entra ID's ``email`` is whatever a directory's admin typed in, unverified: it counts only
        with ``email_verified``, or the optional ``xms_edov`` claim (the address's domain is one the
        directory has verified), which the app registration must be set to send."""
        return super().email_verified(claims) or claims.get("xms_edov") in (True, "true", "1", 1)


class GitHubProvider(Provider):
    """GitHub's OAuth web flow (GitHub Enterprise Server's too) and its REST API."""

    name = GITHUB
    display_name = "GitHub"
    scopes = ("read:user", "user:email")
    uses_nonce = False
    API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

    def __init__(self, client_id, client_secret, *, base_url, api_url, timeout):
        super().__init__(client_id, client_secret, timeout)
        self.base_url, self.api_url = base_url.rstrip("/"), api_url.rstrip("/")

    def endpoints(self):
        return {
            "authorization_endpoint": f"{self.base_url}/login/oauth/authorize",
            "token_endpoint": f"{self.base_url}/login/oauth/access_token",
        }

    def identity(self, *, code, redirect_uri, code_verifier, nonce_hash=None):
        with self._session(redirect_uri=redirect_uri, token_endpoint_auth_method="client_secret_post") as session:
            self._tokens(session, code=code, redirect_uri=redirect_uri, code_verifier=code_verifier)
            user = self._api(session, "/user")
            emails = self._api(session, "/user/emails")
        if not isinstance(user, dict) or not isinstance(user.get("id"), int) or not isinstance(emails, list):
            raise ProviderRefused("GitHub's API answered something else than a user and its addresses")
        primary = next((entry for entry in emails if isinstance(entry, dict) and entry.get("primary")), None)
        email = None
        if primary is not None and primary.get("verified") is True and isinstance(primary.get("email"), str):
            try:
                email = normalize_email(primary["email"])
            except EmailNotValidError:
                email = None
        name = user.get("name") or user.get("login")
        return ProviderIdentity(
            provider=self.name, issuer=self.base_url, subject=str(user["id"]), email=email,
            email_verified=email is not None, name=name[:255] if isinstance(name, str) else None,
        )

    def _api(self, session, path):
        url = f"{self.api_url}{path}"
        return _json_answer(url, lambda: session.get(url, headers=self.API_HEADERS))


def configured_providers(settings):
    """``{name: Provider}`` for the providers ``OAUTH_PROVIDERS`` names (``settings``: the
    ``OAuthSettings`` of config.py), in its order."""
    built = {}
    for name in dict.fromkeys(settings.providers):
        client_id, client_secret = settings.client(name)
        if name == GOOGLE:
            built[name] = GoogleProvider(client_id, client_secret, timeout=settings.timeout)
        elif name == MICROSOFT:
            built[name] = MicrosoftProvider(client_id, client_secret, tenant=settings.microsoft_tenant,
                                            timeout=settings.timeout)
        elif name == GITHUB:
            built[name] = GitHubProvider(client_id, client_secret, base_url=settings.github_base_url,
                                         api_url=settings.github_api_url, timeout=settings.timeout)
        elif name == OIDC:
            built[name] = OpenIDProvider(settings.oidc_issuer, client_id, client_secret,
                                         display_name=settings.oidc_display_name,
                                         scopes=settings.oidc_scopes.split(), timeout=settings.timeout)
    return built
