"""How an API key is found in a request and verified, for the gate (``API_KEY`` scheme)."""
from flask import request

from saas.apikeys.service import looks_like_api_key, user_of_api_key
from saas.web.api import API_KEY
from saas.web.blueprint import Authenticator, Principal
from saas.web.requests import bearer_token

API_KEY_HEADER = "X-API-Key"


def presented_api_key():
    """The API key in ``X-API-Key`` or ``Authorization: Bearer sk_...``, else None."""
    header = request.headers.get(API_KEY_HEADER, "").strip()
    if header:
        return header
    token = bearer_token()
    return token if token and looks_like_api_key(token) else None


def principal_for_api_key(raw_key):
    user, key_id, org_id = user_of_api_key(raw_key)
    return Principal(user=user, scheme=API_KEY, api_key_id=key_id, api_key_org_id=org_id)


api_key_authenticator = Authenticator(API_KEY, presented_api_key, principal_for_api_key)
