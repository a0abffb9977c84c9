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
from saas.core.permissions import Permission
from saas.extensions import limiter
from saas.web.api import SESSION
from saas.web.blueprint import ApiBlueprint, current_principal

blp = ApiBlueprint(
    "billing", __name__, url_prefix="/billing", requires_verified_email=True,
    description="Stripe billing of the caller's personal organization.",
)
org_billing_blp = ApiBlueprint(
    "org_billing", __name__, url_prefix="/orgs", requires_verified_email=True,
    description="Stripe billing of an organization: its owners buy and manage the subscription.",
)


def _personal_org():
    return current_principal().user.personal_org


@blp.route("/plans", methods=["GET"])
@blp.response(200, PlanSchema(many=True))
def list_plans():
    """The plans one can subscribe to (STRIPE_PLANS), in their configured order. Public."""
    return service.plan_list()


@blp.route("/subscription", methods=["GET"])
@blp.auth(SESSION)
@blp.response(200, SubscriptionSchema)
def get_subscription():
    """The subscription of the caller's personal organization, as last reported by Stripe.

    Without one: plan "free" and status "none". With several, the one that grants access (the
    newest if several do); ended subscriptions are not shown.
    """
    return subscription_summary(_personal_org())


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
    return service.start_checkout(_personal_org(), current_principal().user, **fields)


@blp.route("/customer-portal", methods=["GET"])
@blp.auth(SESSION)
@blp.arguments(PortalQuerySchema, location="query")
@blp.response(200, PortalSessionSchema)
@blp.alt_response(502, response="BAD_GATEWAY")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def customer_portal(query):
    """A Stripe customer portal link where the user manages payment methods and plans."""
    return service.open_portal(_personal_org(), **query)


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
@blp.auth(SESSION, org="acting")
@plan_required("pro", "team")
@blp.response(200, ProFeatureSchema)
@blp.alt_response(402, response="PAYMENT_REQUIRED")
def pro_feature():
    """Example of an endpoint for paying users only: copy its `@plan_required(...)`.

    The plan is the acting organization's (`X-Org-Id`, else the personal one). Pro and team
    plans get 200; others get 402 with `errors.required_plans` and `errors.current_plan`. A
    past_due subscription keeps access for BILLING_PAST_DUE_GRACE_DAYS.
    """
    return {"message": "Welcome to the paid feature.", "plan": current_principal().org.effective_plan}


@org_billing_blp.route("/<int:org_id>/billing/subscription", methods=["GET"])
@org_billing_blp.auth(SESSION, org="path", permission=Permission.SUBSCRIPTION_READ)
@org_billing_blp.response(200, SubscriptionSchema)
def get_org_subscription(org_id):
    """The organization's current subscription (any member); `seats` for a per-seat plan."""
    return subscription_summary(current_principal().org)


@org_billing_blp.route("/<int:org_id>/billing/checkout", methods=["POST"])
@org_billing_blp.auth(SESSION, org="path", permission=Permission.BILLING_MANAGE)
@org_billing_blp.arguments(CheckoutRequestSchema)
@org_billing_blp.response(200, CheckoutSessionSchema)
@org_billing_blp.alt_response(409, response="CONFLICT")
@org_billing_blp.alt_response(502, response="BAD_GATEWAY")
@org_billing_blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def create_org_checkout(fields, org_id):
    """Open a Stripe Checkout session for the organization (owners only).

    As `POST /api/v1/billing/create-checkout-session`. A per-seat plan (STRIPE_SEAT_PLANS) is
    bought for as many seats as the organization has members, and follows them after.
    """
    principal = current_principal()
    return service.start_checkout(principal.org, principal.user, **fields)


@org_billing_blp.route("/<int:org_id>/billing/portal", methods=["GET"])
@org_billing_blp.auth(SESSION, org="path", permission=Permission.BILLING_MANAGE)
@org_billing_blp.arguments(PortalQuerySchema, location="query")
@org_billing_blp.response(200, PortalSessionSchema)
@org_billing_blp.alt_response(502, response="BAD_GATEWAY")
@org_billing_blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def org_customer_portal(query, org_id):
    """A Stripe customer portal link for the organization (owners only)."""
    return service.open_portal(current_principal().org, **query)
