"""flask-jwt-extended hooks: a token is honoured only while its session is open and its user active."""
from flask import current_app, g, request
from flask_jwt_extended import verify_jwt_in_request

from saas.api import BEARER_SCHEME
from saas.auth.service import open_session_of
from saas.extensions import db
from saas.users.models import User


def register_token_callbacks(jwt):
    @jwt.token_in_blocklist_loader
    def token_is_revoked(jwt_header, jwt_payload):
        # Held on g for the request: the identity map keeps objects only weakly, and the user
        # loaded with the session saves the user lookup below a second query.
        g.auth_session = open_session_of(jwt_payload)
        return g.auth_session is None

    @jwt.user_lookup_loader
    def load_active_user(jwt_header, jwt_payload):
        user = db.session.get(User, int(jwt_payload["sub"]))
        return user if user is not None and user.is_active else None


def accept_bearer_scheme_in_any_case():
    """Treat ``bearer``/``BEARER`` as ``Bearer``: the scheme is case-insensitive (RFC 7235), and
    OAuth2 clients send the login's ``token_type`` ("bearer") as the scheme; flask-jwt-extended
    only matches "Bearer" exactly. ``request.headers`` reads the environ, so this reaches it."""
    scheme, space, credentials = request.environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if space and scheme != "Bearer" and scheme.lower() == "bearer":
        request.environ["HTTP_AUTHORIZATION"] = f"Bearer {credentials}"


def require_documented_bearer_token():
    """Demand the access token of an endpoint documented as ``security: [{BearerAuth: []}]``
    before anything else runs.

    ``@jwt_required()`` sits under flask-smorest's decorators, which parse and validate the
    body first: a caller without a token would get a 422 describing the body instead of the
    401. Checking here also means no endpoint can document a token and forget to demand one.
    """
    if request.method == "OPTIONS" or request.endpoint is None:
        return  # CORS preflights carry no credentials; unrouted requests 404/405 anyway
    view = current_app.view_functions.get(request.endpoint)
    security = getattr(view, "_apidoc", {}).get("manual_doc", {}).get("security")
    if security == [{BEARER_SCHEME: []}]:
        verify_jwt_in_request()
