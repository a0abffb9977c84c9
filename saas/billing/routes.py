"""Stripe Checkout, the customer portal and the webhook endpoint."""
from flask import request
from flask_jwt_extended import current_user, jwt_required
from flask_smorest import Blueprint

from saas.api import BEARER_SCHEME
from saas.billing import service
from saas.billing.schemas import (
    CheckoutRequestSchema,
    CheckoutSessionSchema,
    PortalQuerySchema,
    PortalSessionSchema,
    WebhookAckSchema,
)
from saas.billing.webhooks import receive_event
from saas.extensions import limiter

blp = Blueprint("billing", __name__, url_prefix="/api/v1/billing", description="Stripe billing.")


@blp.route("/create-checkout-session", methods=["POST"])
@blp.arguments(CheckoutRequestSchema)
@blp.response(200, CheckoutSessionSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(502, response="BAD_GATEWAY")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
@blp.doc(security=[{BEARER_SCHEME: []}])
@jwt_required()
def create_checkout_session(fields):
    """Open a Stripe Checkout session for a subscription to one of the configured plans.

    Give `price_id` or `plan` (see STRIPE_PLANS). `success_url` and `cancel_url` must point at an
    allowed origin (ALLOWED_ORIGINS or FRONTEND_URL) and default to pages under FRONTEND_URL.
    """
    return service.start_checkout(current_user, **fields)


@blp.route("/customer-portal", methods=["GET"])
@blp.arguments(PortalQuerySchema, location="query")
@blp.response(200, PortalSessionSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(502, response="BAD_GATEWAY")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
@blp.doc(security=[{BEARER_SCHEME: []}])
@jwt_required()
def customer_portal(query):
    """A Stripe customer portal link where the user manages payment methods and plans."""
    return service.open_portal(current_user, **query)


@blp.route("/webhook", methods=["POST"])
@limiter.exempt
@blp.doc(
    requestBody={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    parameters=[{"in": "header", "name": "Stripe-Signature", "required": True, "schema": {"type": "string"}}],
)
@blp.response(200, WebhookAckSchema)
@blp.alt_response(400, response="BAD_REQUEST")
def stripe_webhook():
    """Stripe's webhook endpoint, verified with STRIPE_WEBHOOK_SECRET.

    Each event is stored and applied once, however often and however concurrently it is
    delivered. Unknown event types are acknowledged and ignored.
    """
    _, duplicate = receive_event(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    return {"received": True, "duplicate": duplicate}
