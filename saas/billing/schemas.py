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
