import marshmallow as ma

from saas.web.fields import Text
from saas.webhooks.addresses import MAX_URL_LENGTH
from saas.webhooks.catalog import EVENT_TYPES
from saas.webhooks.models import DELIVERY_STATUSES, DISABLED_BY_ADMIN, DISABLED_FAILING, DISABLED_GONE

EVENT_TYPE_NAMES = tuple(EVENT_TYPES)


def _events(**kwargs):
    return ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(EVENT_TYPE_NAMES)),
        validate=ma.validate.Length(min=1, max=len(EVENT_TYPE_NAMES)),
        metadata={"description": "The event types to receive (`GET /api/v1/webhooks/event-types`)."},
        **kwargs,
    )


def _url(**kwargs):
    return ma.fields.String(
        validate=ma.validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={"description": "An `https://` URL of a public host; private, loopback, link-local and "
                                 "metadata addresses are refused (422)."},
        **kwargs,
    )


class WebhookCreateSchema(ma.Schema):
    url = _url(required=True)
    events = _events(required=True)
    description = Text(max_length=500, allow_none=True)


class WebhookUpdateSchema(ma.Schema):
    url = _url()
    events = _events()
    description = Text(max_length=500, allow_none=True)
    enabled = ma.fields.Boolean(metadata={"description": "`false` stops deliveries; `true` resumes them."})


class WebhookSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    url = ma.fields.String(required=True)
    events = ma.fields.List(ma.fields.String(), required=True)
    description = ma.fields.String(allow_none=True, required=True)
    enabled = ma.fields.Boolean(required=True)
    disabled_reason = ma.fields.String(
        allow_none=True, required=True, validate=ma.validate.OneOf((DISABLED_BY_ADMIN, DISABLED_GONE, DISABLED_FAILING)),
        metadata={"description": "Why it is disabled: `disabled` (by an admin), `gone` (it answered 410), "
                                 "`failing` (every delivery failed for WEBHOOK_DISABLE_AFTER_HOURS); null while enabled."},
    )
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(allow_none=True, required=True)


class NewWebhookSchema(WebhookSchema):
    secret = ma.fields.String(
        required=True,
        metadata={"description": "The signing secret (`whsec_...`). Shown this once (and on rotation): store it now."},
    )


class WebhookSecretSchema(ma.Schema):
    secret = ma.fields.String(
        required=True,
        metadata={"description": "The new signing secret; the previous one keeps signing too for "
                                 "WEBHOOK_SECRET_OVERLAP_HOURS."},
    )


class WebhookDeliverySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    event_id = ma.fields.String(required=True, metadata={"description": "The `webhook-id` header of every attempt."})
    event_type = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(DELIVERY_STATUSES))
    attempts = ma.fields.Integer(required=True)
    last_status_code = ma.fields.Integer(allow_none=True, required=True)
    last_error = ma.fields.String(
        allow_none=True, required=True,
        metadata={"description": "Why the last attempt failed: the receiver's status and the start of its answer, "
                                 "or what stopped the request (timeout, refused address, TLS)."},
    )
    next_attempt_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    completed_at = ma.fields.AwareDateTime(allow_none=True, required=True)


class EventTypeSchema(ma.Schema):
    type = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    example = ma.fields.Dict(required=True, metadata={"description": "An example payload of this type."})
