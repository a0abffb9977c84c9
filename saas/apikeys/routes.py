"""Creating, listing and revoking the current user's API keys (a login session is required)."""
from saas.apikeys import service
from saas.apikeys.schemas import ApiKeyCreateSchema, ApiKeySchema, NewApiKeySchema
from saas.web.api import SESSION
from saas.web.blueprint import Blueprint, current_principal

blp = Blueprint(
    "api_keys", __name__, url_prefix="/api-keys", description="API keys for scripts and servers.",
    requires_verified_email=True,
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@blp.route("", methods=["POST"])
@blp.auth(SESSION)
@blp.doc(operationId="api_keys_create")
@blp.arguments(ApiKeyCreateSchema)
@blp.response(201, NewApiKeySchema)
def create_api_key(fields):
    """Create an API key; the response is the only time the key itself is shown.

    Send it as `Authorization: Bearer <key>` or `X-API-Key: <key>` to the AI, usage and
    read-only account endpoints. Managing keys and changing the account need a login session.
    """
    return service.create_key(current_principal().user, **fields), 201, NO_STORE


@blp.route("", methods=["GET"])
@blp.auth(SESSION)
@blp.doc(operationId="api_keys_list")
@blp.response(200, ApiKeySchema(many=True))
def list_api_keys():
    """The current user's API keys, newest first. The keys themselves are never shown again."""
    return service.list_keys(current_principal().user)


@blp.route("/<int:key_id>", methods=["DELETE"])
@blp.auth(SESSION)
@blp.doc(operationId="api_keys_revoke")
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def revoke_api_key(key_id):
    """Revoke a key: it stops working at once. Another user's key is a 404."""
    service.revoke_key(current_principal().user, key_id)
