import marshmallow as ma


class UsageSchema(ma.Schema):
    plan = ma.fields.String(required=True, metadata={"example": "free"})
    quota = ma.fields.Integer(required=True, metadata={"description": "Tokens allowed this month."})
    used = ma.fields.Integer(required=True, metadata={"description": "Tokens used this month."})
    reserved = ma.fields.Integer(
        required=True, metadata={"description": "Tokens held by calls still in progress."}
    )
    remaining = ma.fields.Integer(required=True)
    period_start = ma.fields.AwareDateTime(required=True)
    resets_at = ma.fields.AwareDateTime(
        required=True, metadata={"description": "Start of the next month (UTC), when `used` is back to 0."}
    )


class MemberUsageSchema(ma.Schema):
    user_id = ma.fields.Integer(required=True)
    email = ma.fields.String(
        required=True, allow_none=True,
        metadata={"description": "Shown to admins and owners, and to the member themselves; null for others."},
    )
    full_name = ma.fields.String(required=True, allow_none=True, metadata={"description": "As `email`."})
    used = ma.fields.Integer(required=True, metadata={"description": "Tokens this member used this month."})
    reserved = ma.fields.Integer(required=True, metadata={"description": "Tokens their calls in progress hold."})


class OrgUsageSchema(UsageSchema):
    members = ma.fields.List(ma.fields.Nested(MemberUsageSchema), required=True)
