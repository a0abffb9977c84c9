import marshmallow as ma


class CheckoutRequestSchema(ma.Schema):
    price_id = ma.fields.String(metadata={"description": "A price of STRIPE_PLANS; or give `plan`."})
    plan = ma.fields.String(metadata={"description": "A plan name of STRIPE_PLANS, e.g. `pro`."})
    success_url = ma.fields.String(
        validate=ma.validate.Length(max=2048),
        metadata={"description": "Must be on an allowed origin; defaults to FRONTEND_URL."},
    )
    cancel_url = ma.fields.String(
        validate=ma.validate.Length(max=2048),
        metadata={"description": "Must be on an allowed origin; defaults to FRONTEND_URL."},
    )

    @ma.validates_schema
    def price_or_plan(self, data, **kwargs):
        if "price_id" not in data and "plan" not in data:
            raise ma.ValidationError("Give price_id or plan.", "price_id")


class CheckoutSessionSchema(ma.Schema):
    checkout_url = ma.fields.String(required=True)
    session_id = ma.fields.String(required=True)


class PortalQuerySchema(ma.Schema):
    return_url = ma.fields.String(
        validate=ma.validate.Length(max=2048),
        metadata={"description": "Must be on an allowed origin; defaults to FRONTEND_URL."},
    )


class PortalSessionSchema(ma.Schema):
    portal_url = ma.fields.String(required=True)


class WebhookAckSchema(ma.Schema):
    received = ma.fields.Boolean(required=True)
    duplicate = ma.fields.Boolean(required=True)


class PlanSchema(ma.Schema):
    plan = ma.fields.String(required=True, metadata={"description": "The plan name, e.g. `pro`."})
    price_id = ma.fields.String(required=True, metadata={"description": "Its Stripe price."})


class SubscriptionSchema(ma.Schema):
    plan = ma.fields.String(
        required=True,
        allow_none=True,
        metadata={"description": '"free" without a subscription; null for a price not in STRIPE_PLANS.'},
    )
    status = ma.fields.String(
        required=True,
        metadata={"description": 'Stripe\'s status (active, trialing, past_due, unpaid, ...), or "none".'},
    )
    price_id = ma.fields.String(required=True, allow_none=True)
    current_period_end = ma.fields.AwareDateTime(required=True, allow_none=True)
    cancel_at_period_end = ma.fields.Boolean(required=True)
    trial_end = ma.fields.AwareDateTime(required=True, allow_none=True)
    has_access = ma.fields.Boolean(
        required=True,
        metadata={"description": "Whether the plan's features are available now (active, trialing, or "
                  "past_due within the grace period)."},
    )
    grace_period_end = ma.fields.AwareDateTime(
        required=True,
        allow_none=True,
        metadata={"description": "For past_due: when access ends unless the payment succeeds."},
    )
    seats = ma.fields.Integer(
        required=True, allow_none=True,
        metadata={"description": "Seats paid for, on a per-seat plan (STRIPE_SEAT_PLANS); null otherwise."},
    )


class ProFeatureSchema(ma.Schema):
    message = ma.fields.String(required=True)
    plan = ma.fields.String(required=True)
