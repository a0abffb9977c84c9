"""What a request says about its caller: address, bearer token, rate-limit key."""
from flask import g, request


def client_ip():
    """The caller's address, as seen after ProxyFix has applied the configured hop count."""
    return request.remote_addr or "unknown"


def bearer_token():
    """The credentials of an ``Authorization: Bearer ...`` header (scheme in any case), else None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def principal_or_ip_key():
    """Rate limits count per API key or user once the gate has found one, else per address."""
    principal = g.get("principal")
    return principal.rate_limit_key if principal is not None else f"ip:{client_ip()}"
