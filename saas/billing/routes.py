"""Plans, subscriptions, Stripe Checkout, the customer portal and the webhook endpoint."""
from flask import request

from saas.billing import service
from saas.billing.decorators import plan_required
from saas.billing.entitlements import subscription_summary
from saas.billing.schemas import (
    CheckoutRequestSchema,
    CheckoutSessionSchema,
    PlanSchema,
    PortalQuerySchema,
    PortalSessionSchema,
    ProFeatureSchema,
    SubscriptionSchema,
    WebhookAckSchema,
)
from saas.billing.webhooks import receive_event
from saas.extensions import limiter
from saas.web.api import SESSION
from saas.web.blueprint import Blueprint, current_principal

blp = Blueprint(
    "billing", __name__, url_prefix="/billing", description="Stripe billing.", requires_verified_email=True
)


@blp.route("/plans", methods=["GET"])
@blp.response(200, PlanSchema(many=True))
def list_plans():
    """The plans one can subscribe to (STRIPE_PLANS), in their configured order. Public."""
    return service.plan_list()


@blp.route("/subscription", methods=["GET"])
@blp.auth(SESSION)
@blp.response(200, SubscriptionSchema)
def get_subscription():
    """The caller's current subscription, as last reported by Stripe.

    Without one: plan "free" and status "none". A user with several subscriptions sees the one
    that grants access (the newest if several do); ended subscriptions are not shown.
    """
    return subscription_summary(current_principal().user)


@blp.route("/create-checkout-session", methods=["POST"])
@blp.auth(SESSION)
@blp.arguments(CheckoutRequestSchema)
@blp.response(200, CheckoutSessionSchema)
@blp.alt_response(409, response="CONFLICT")
@blp.alt_response(502, response="BAD_GATEWAY")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def create_checkout_session(fields):
    """Open a Stripe Checkout session for a subscription to one of the configured plans.

    Give `price_id` or `plan` (see GET /plans). `success_url` and `cancel_url` must point at an
    allowed origin (ALLOWED_ORIGINS or FRONTEND_URL) and default to pages under FRONTEND_URL.
    A user whose subscription is active, trialing or past_due gets 409: plan changes and
    payment fixes go through the customer portal, so nobody pays for two subscriptions.
    """
    return service.start_checkout(current_principal().user, **fields)


@blp.route("/customer-portal", methods=["GET"])
@blp.auth(SESSION)
@blp.arguments(PortalQuerySchema, location="query")
@blp.response(200, PortalSessionSchema)
@blp.alt_response(502, response="BAD_GATEWAY")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def customer_portal(query):
    """A Stripe customer portal link where the user manages payment methods and plans."""
    return service.open_portal(current_principal().user, **query)


@blp.route("/webhook", methods=["POST"])
@limiter.exempt
@blp.doc(
    requestBody={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    parameters=[{"in": "header", "name": "Stripe-Signature", "required": True, "schema": {"type": "string"}}],
)
@blp.response(200, WebhookAckSchema)
@blp.alt_response(400, response="BAD_REQUEST")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def stripe_webhook():
    """Stripe's webhook endpoint, verified with STRIPE_WEBHOOK_SECRET.

    A missing, wrong or stale (over 300 s) signature, or a body that is not a JSON event, is a
    400 and nothing is stored; any one of several `v1=` signatures may match, and
    STRIPE_WEBHOOK_SECRET may list several comma-separated secrets while one is rolled.
    Each event is stored and applied once, however often and however concurrently it is
    delivered; applying runs in an RQ job, and a failure is recorded and retried. A 503 (the
    queue is unreachable) makes Stripe deliver the event again. Handled: checkout.session.completed,
    customer.subscription.created/updated/deleted/paused/resumed/trial_will_end, invoice.paid,
    invoice.payment_failed, customer.deleted; other types are acknowledged and ignored.
    """
    _, duplicate = receive_event(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    return {"received": True, "duplicate": duplicate}


@blp.route("/pro-feature", methods=["GET"])
@blp.auth(SESSION)
@plan_required("pro", "team")
@blp.response(200, ProFeatureSchema)
@blp.alt_response(402, response="PAYMENT_REQUIRED")
def pro_feature():
    """Example of an endpoint for paying users only: copy its `@plan_required(...)`.

    Users on the pro or team plan get 200; others get 402 with `errors.required_plans` and
    `errors.current_plan`. A past_due subscription keeps access for BILLING_PAST_DUE_GRACE_DAYS.
    """
    return {"message": "Welcome to the paid feature.", "plan": current_principal().user.effective_plan}
