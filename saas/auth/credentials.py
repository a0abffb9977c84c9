"""How a login session's access token is found in a request and verified (``SESSION`` scheme)."""
from saas.auth.service import user_of_access_token
from saas.web.api import SESSION
from saas.web.blueprint import Authenticator, Principal
from saas.web.requests import bearer_token


def principal_for_access_token(raw_token):
    user, session_id, methods, sso_org_id = user_of_access_token(raw_token)
    return Principal(user=user, scheme=SESSION, session_id=session_id, auth_methods=methods, sso_org_id=sso_org_id)


session_authenticator = Authenticator(SESSION, bearer_token, principal_for_access_token)
