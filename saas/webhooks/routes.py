"""An organization's webhook endpoints (admins and owners: ``webhooks.manage``), their
deliveries, and the event types there are."""
from saas.core.permissions import Permission
from saas.webhooks import service
from saas.webhooks.catalog import EVENT_TYPES
from saas.webhooks.schemas import (
    EventTypeSchema,
    NewWebhookSchema,
    WebhookCreateSchema,
    WebhookDeliverySchema,
    WebhookSchema,
    WebhookSecretSchema,
    WebhookUpdateSchema,
)
from saas.web.api import API_KEY, SESSION
from saas.web.blueprint import ApiBlueprint, current_principal

blp = ApiBlueprint(
    "webhooks", __name__, url_prefix="/orgs", requires_verified_email=True,
    description="Outbound webhooks: an organization's endpoints receive its events, signed per Standard Webhooks.",
)
event_types_blp = ApiBlueprint(
    "webhook_event_types", __name__, url_prefix="/webhooks", description="The events webhooks can carry.",
)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ENDPOINTS = "/<int:org_id>/webhooks"
ENDPOINT = ENDPOINTS + "/<int:webhook_id>"
EXAMPLE_TIMESTAMP = "2026-01-05T10:00:04Z"


def _event_types():
    return [
        {"type": event.type, "description": event.description,
         "example": {"type": event.type, "timestamp": EXAMPLE_TIMESTAMP, "data": event.example}}
        for event in EVENT_TYPES.values()
    ]


@blp.route(ENDPOINTS, methods=["POST"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.arguments(WebhookCreateSchema)
@blp.response(201, NewWebhookSchema)
@blp.alt_response(409, response="CONFLICT")
def create_webhook(fields, org_id):
    """Add an endpoint for the events it lists; the response is the only time its signing secret
    is shown (and the rotation's). The URL must be `https://` and must not point at a private,
    loopback, link-local or metadata address (422); the host is resolved and checked again at
    every delivery. At most 20 endpoints (409)."""
    principal = current_principal()
    return service.create_endpoint(principal.org, principal.user, **fields), 201, NO_STORE


@blp.route(ENDPOINTS, methods=["GET"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.response(200, WebhookSchema(many=True))
def list_webhooks(org_id):
    """The organization's endpoints, newest first (never their secrets)."""
    return service.endpoints_of(current_principal().org)


@blp.route(ENDPOINT, methods=["GET"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.response(200, WebhookSchema)
def get_webhook(org_id, webhook_id):
    """One endpoint; another organization's is a 404."""
    return service.endpoint_of(current_principal().org, webhook_id)


@blp.route(ENDPOINT, methods=["PATCH"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.arguments(WebhookUpdateSchema)
@blp.response(200, WebhookSchema)
def update_webhook(fields, org_id, webhook_id):
    """Change the URL (checked as at creation), the events, the description, or enable it again
    after it was disabled (by an admin, a 410, or failing too long) or disable it."""
    return service.update_endpoint(current_principal().org, webhook_id, fields)


@blp.route(ENDPOINT, methods=["DELETE"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.response(204)
def delete_webhook(org_id, webhook_id):
    """Delete the endpoint and its delivery history; nothing more is sent to it."""
    service.delete_endpoint(current_principal().org, webhook_id)


@blp.route(ENDPOINT + "/rotate-secret", methods=["POST"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.response(200, WebhookSecretSchema)
def rotate_webhook_secret(org_id, webhook_id):
    """A new signing secret, shown this once. For `WEBHOOK_SECRET_OVERLAP_HOURS` (24) every
    delivery carries two signatures, the new secret's and the old one's (space-separated in
    `webhook-signature`), so the receiver can switch at its own pace."""
    return {"secret": service.rotate_secret(current_principal().org, webhook_id)}, 200, NO_STORE


@blp.route(ENDPOINT + "/test", methods=["POST"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.response(202, WebhookDeliverySchema)
@blp.alt_response(409, response="CONFLICT")
def test_webhook(org_id, webhook_id):
    """Send a `webhook.test` event to this endpoint only (409 while it is disabled); the answer
    is its delivery, whose outcome the delivery list shows."""
    return service.send_test_event(current_principal().org, webhook_id)


@blp.route(ENDPOINT + "/deliveries", methods=["GET"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.response(200, WebhookDeliverySchema(many=True))
@blp.paginate()
def list_webhook_deliveries(org_id, webhook_id, pagination_parameters):
    """The endpoint's deliveries, newest first: `pending` (first attempt to come), `retrying`
    (failed, the next attempt at `next_attempt_at`), `succeeded` or `failed` (retries used up, or
    the endpoint disabled). Paginated with `page` and `page_size` (default 10, at most 100); the
    `X-Pagination` header has the totals. Finished deliveries are kept 30 days."""
    return service.deliveries_page(current_principal().org, webhook_id, pagination_parameters)


@blp.route(ENDPOINT + "/deliveries/<int:delivery_id>/retry", methods=["POST"])
@blp.auth(SESSION, org="path", permission=Permission.WEBHOOKS_MANAGE)
@blp.response(202, WebhookDeliverySchema)
@blp.alt_response(409, response="CONFLICT")
def retry_webhook_delivery(org_id, webhook_id, delivery_id):
    """Attempt a delivery again now, with its `webhook-id` (409 while the endpoint is disabled or
    an attempt is in flight)."""
    return service.retry_delivery(current_principal().org, webhook_id, delivery_id)


@event_types_blp.route("/event-types", methods=["GET"])
@event_types_blp.auth(SESSION, API_KEY)
@event_types_blp.response(200, EventTypeSchema(many=True), example=_event_types())
def list_event_types():
    """The event types an endpoint can subscribe to, each with what it means and an example
    payload. Every payload is `{"type", "timestamp", "data"}` and `data` has the `org_id`.
    Deliveries carry the Standard Webhooks headers `webhook-id` (the event's id, the same on
    every retry: drop duplicates by it), `webhook-timestamp` and `webhook-signature`."""
    return _event_types()
