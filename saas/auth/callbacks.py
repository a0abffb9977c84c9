"""flask-jwt-extended hooks: a token is honoured only while its session is open and its user active."""
from saas.auth.service import session_is_usable
from saas.extensions import db
from saas.users.models import User


def register_token_callbacks(jwt):
    @jwt.token_in_blocklist_loader
    def token_is_revoked(jwt_header, jwt_payload):
        return not session_is_usable(jwt_payload)

    @jwt.user_lookup_loader
    def load_active_user(jwt_header, jwt_payload):
        user = db.session.get(User, int(jwt_payload["sub"]))
        return user if user is not None and user.is_active else None
