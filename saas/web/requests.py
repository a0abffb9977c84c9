"""What a request says about its caller: address, bearer token, rate-limit keys."""
import functools
import logging

from flask import g, request

log = logging.getLogger(__name__)


def never_raises(fallback):
    """For rate-limit key functions: flask-limiter takes any error in one for an outage of its
    storage and falls back to counting in process memory, which forgets the locks Redis holds
    (a locked account would get guesses through). So a key function answers ``fallback()``
    instead of raising, whatever the request carries."""

    def decorator(key_function):
        @functools.wraps(key_function)
        def guarded():
            try:
                return key_function()
            except Exception as error:  # noqa: BLE001 (the point: nothing may escape)
                log.warning("rate-limit key %s failed: %s", key_function.__name__, error.__class__.__name__)
                return fallback()

        return guarded

    return decorator


def client_ip():
    """The caller's address, as seen after ProxyFix has applied the configured hop count."""
    return request.remote_addr or "unknown"


client_ip_key = never_raises(fallback=lambda: "ip:unknown")(client_ip)


def bearer_token():
    """The credentials of an ``Authorization: Bearer ...`` header (scheme in any case), else None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


@never_raises(fallback=lambda: "ip:unknown")
def principal_or_ip_key():
    """Rate limits count per caller once the gate has found one (the user, or the organization
    of an organization's API key: ``Principal.rate_limit_key``), else per address."""
    principal = g.get("principal")
    return principal.rate_limit_key if principal is not None else f"ip:{client_ip()}"
