"""Who is calling: the keys that rate limits and logs use."""
from flask import request
from flask_jwt_extended import decode_token


def client_ip():
    """The caller's address, as seen after ProxyFix has applied the configured hop count."""
    return request.remote_addr or "unknown"


def bearer_token():
    """The credentials of an ``Authorization: Bearer ...`` header (scheme in any case), else None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def user_or_ip_key():
    """Per user when a valid access token is present, per address otherwise."""
    token = bearer_token()
    if token:
        try:
            return f"user:{decode_token(token)['sub']}"
        except Exception:  # the view rejects a bad token; here it just limits by address
            pass
    return f"ip:{client_ip()}"
