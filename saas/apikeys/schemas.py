from datetime import datetime, timezone

import marshmallow as ma


class ApiKeyCreateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    expires_at = ma.fields.AwareDateTime(
        allow_none=True, metadata={"description": "When the key stops working; never when omitted."}
    )

    @ma.validates("expires_at")
    def in_the_future(self, value, **kwargs):
        if value is not None and value <= datetime.now(timezone.utc):
            raise ma.ValidationError("Must be in the future.")


class ApiKeySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    prefix = ma.fields.String(required=True, metadata={"description": "The start of the key, to recognise it."})
    created_at = ma.fields.AwareDateTime(required=True)
    last_used_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    expires_at = ma.fields.AwareDateTime(allow_none=True, required=True)


class NewApiKeySchema(ApiKeySchema):
    key = ma.fields.String(
        attribute="secret", required=True, metadata={"description": "The key itself. Shown this once only: store it now."}
    )
