"""Creating, listing and revoking API keys (a login session is required): the personal
organization's at ``/api/v1/api-keys``, an organization's at ``/api/v1/orgs/{id}/api-keys``."""
from saas.apikeys import service
from saas.apikeys.schemas import ApiKeyCreateSchema, ApiKeySchema, NewApiKeySchema
from saas.core.permissions import Permission
from saas.web.api import SESSION
from saas.web.blueprint import ApiBlueprint, current_principal

blp = ApiBlueprint(
    "api_keys", __name__, url_prefix="/api-keys", description="API keys for scripts and servers.",
    requires_verified_email=True,
)
org_keys_blp = ApiBlueprint(
    "org_api_keys", __name__, url_prefix="/orgs", requires_verified_email=True,
    description="An organization's API keys: they act for the organization (admins manage them).",
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@blp.route("", methods=["POST"])
@blp.auth(SESSION)
@blp.doc(operationId="api_keys_create")
@blp.arguments(ApiKeyCreateSchema)
@blp.response(201, NewApiKeySchema)
@blp.alt_response(409, response="CONFLICT")
def create_api_key(fields):
    """Create an API key; the response is the only time the key itself is shown.

    At most `API_KEYS_MAX` (25) keys per owner: 409 past it, or when the caller has made that
    many across their organizations; revoke one first.

    Send it as `Authorization: Bearer <key>` or `X-API-Key: <key>` to the AI, usage and
    read-only account endpoints. Managing keys and changing the account need a login session.
    """
    user = current_principal().user
    return service.create_key(user.personal_org, user, **fields), 201, NO_STORE


@blp.route("", methods=["GET"])
@blp.auth(SESSION)
@blp.doc(operationId="api_keys_list")
@blp.response(200, ApiKeySchema(many=True))
def list_api_keys():
    """The current user's API keys, newest first. The keys themselves are never shown again."""
    return service.list_keys(current_principal().user.personal_org)


@blp.route("/<int:key_id>", methods=["DELETE"])
@blp.auth(SESSION)
@blp.doc(operationId="api_keys_revoke")
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def revoke_api_key(key_id):
    """Revoke a key: it stops working at once. Another user's key is a 404."""
    service.revoke_key(current_principal().user.personal_org, key_id)


@org_keys_blp.route("/<int:org_id>/api-keys", methods=["POST"])
@org_keys_blp.auth(SESSION, org="path", permission=Permission.API_KEYS_MANAGE)
@org_keys_blp.arguments(ApiKeyCreateSchema)
@org_keys_blp.response(201, NewApiKeySchema)
@org_keys_blp.alt_response(409, response="CONFLICT")
def create_org_api_key(fields, org_id):
    """Create an API key of the organization (admins); shown this once. It acts for the
    organization: its quota, its plan. It keeps working when its creator leaves only if the
    admin removing them keeps it (`keep_api_keys=true`). At most `API_KEYS_MAX` (25) keys per
    organization, and per person across their organizations: 409 past either."""
    principal = current_principal()
    return service.create_key(principal.org, principal.user, **fields), 201, NO_STORE


@org_keys_blp.route("/<int:org_id>/api-keys", methods=["GET"])
@org_keys_blp.auth(SESSION, org="path", permission=Permission.API_KEYS_MANAGE)
@org_keys_blp.response(200, ApiKeySchema(many=True))
def list_org_api_keys(org_id):
    """The organization's API keys, newest first."""
    return service.list_keys(current_principal().org)


@org_keys_blp.route("/<int:org_id>/api-keys/<int:key_id>", methods=["DELETE"])
@org_keys_blp.auth(SESSION, org="path", permission=Permission.API_KEYS_MANAGE)
@org_keys_blp.response(204)
@org_keys_blp.alt_response(404, response="NOT_FOUND")
def revoke_org_api_key(org_id, key_id):
    """Revoke one of the organization's keys: it stops working at once."""
    service.revoke_key(current_principal().org, key_id)
