from datetime import datetime, timedelta, timezone

import marshmallow as ma

from saas.web.fields import Text

MAX_KEY_LIFETIME = timedelta(days=3660)


class ApiKeyCreateSchema(ma.Schema):
    name = Text(min_length=1, max_length=100, required=True)
    expires_at = ma.fields.AwareDateTime(
        allow_none=True,
        metadata={"description": "When the key stops working, within ten years; never when omitted."},
    )

    @ma.validates("expires_at")
    def in_the_future(self, value, **kwargs):
        now = datetime.now(timezone.utc)
        if value is not None and value <= now:
            raise ma.ValidationError("Must be in the future.")
        if value is not None and value > now + MAX_KEY_LIFETIME:
            raise ma.ValidationError("Must be within ten years.")

    @ma.post_load
    def expires_at_in_utc(self, data, **kwargs):
        # PostgreSQL refuses offsets beyond +-15:59 (a 500 before), and SQLite drops the offset.
        if data.get("expires_at") is not None:
            data["expires_at"] = data["expires_at"].astimezone(timezone.utc)
        return data


class ApiKeySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    prefix = ma.fields.String(required=True, metadata={"description": "The start of the key, to recognise it."})
    created_by = ma.fields.Integer(required=True, attribute="user_id", metadata={"description": "Who created it (a user id)."})
    created_at = ma.fields.AwareDateTime(required=True)
    last_used_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    expires_at = ma.fields.AwareDateTime(allow_none=True, required=True)


class NewApiKeySchema(ApiKeySchema):
    key = ma.fields.String(
        attribute="secret", required=True, metadata={"description": "The key itself. Shown this once only: store it now."}
    )
