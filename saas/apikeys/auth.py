"""``jwt_or_api_key_required``: an access token or an API key, the user then being ``current_user``.

Endpoints that change credentials or the account keep ``jwt_required()``: a leaked API key must
not be enough to mint more keys or take over the account.
"""
from functools import wraps

from flask import current_app, g, request
from flask_jwt_extended import verify_jwt_in_request

from saas.api import API_KEY_SCHEME, BEARER_SCHEME
from saas.apikeys.service import authenticate, looks_like_api_key
from saas.request_identity import bearer_token

API_KEY_HEADER = "X-API-Key"
# OpenAPI security for endpoints with this decorator: either scheme will do.
TOKEN_OR_API_KEY = [{BEARER_SCHEME: []}, {API_KEY_SCHEME: []}]


def presented_api_key():
    """The API key in ``X-API-Key`` or ``Authorization: Bearer sk_...``, else None."""
    header = request.headers.get(API_KEY_HEADER, "").strip()
    if header:
        return header
    token = bearer_token()
    if token and looks_like_api_key(token):
        return token
    return None


def jwt_or_api_key_required():
    """Like ``jwt_required()``, but an API key is accepted too."""

    def wrapper(fn):
        @wraps(fn)
        def decorator(*args, **kwargs):
            raw_key = presented_api_key()
            if raw_key is None:
                verify_jwt_in_request()
            else:
                _expose_as_current_user(*authenticate(raw_key))
            return current_app.ensure_sync(fn)(*args, **kwargs)

        return decorator

    return wrapper


def _expose_as_current_user(user, key):
    # flask-jwt-extended keeps the verified user and claims on `g` under these names (stable
    # since 4.0; a test covers /users/me with a key). Filling them lets `current_user` and
    # `get_jwt()` work unchanged in views and in the request log.
    g._jwt_extended_jwt_user = {"loaded_user": user}
    g._jwt_extended_jwt_header = {}
    g._jwt_extended_jwt = {"sub": str(user.id), "type": "api_key", "api_key_id": key.id}
    g._jwt_extended_jwt_location = "headers"
