import marshmallow as ma

from saas.orgs.models import ROLES
from saas.web.fields import Email, Text

Role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))


class OrgCreateSchema(ma.Schema):
    name = Text(min_length=1, max_length=255, required=True)


class OrgUpdateSchema(ma.Schema):
    name = Text(min_length=1, max_length=255)
    require_mfa = ma.fields.Boolean(
        metadata={"description": "Members must have two-factor on to act in the organization (owners only; "
                  "the owner making the change must have it on)."},
    )

    @ma.validates_schema
    def something_to_change(self, data, **kwargs):
        if not data:
            raise ma.ValidationError("Send `name`, `require_mfa` or both.", "_schema")


class OrgSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)
    slug = ma.fields.String(required=True)
    personal = ma.fields.Boolean(
        required=True, metadata={"description": "The user's own organization: it cannot be deleted, left or joined."}
    )
    role = ma.fields.String(required=True, metadata={"description": "The caller's role: owner, admin or member."})
    require_mfa = ma.fields.Boolean(
        required=True, metadata={"description": "Whether members must have two-factor authentication on to act in it."}
    )
    created_at = ma.fields.AwareDateTime(required=True)


class MemberSchema(ma.Schema):
    user_id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True, attribute="user.email")
    full_name = ma.fields.String(required=True, allow_none=True, attribute="user.full_name")
    role = ma.fields.String(required=True)
    joined_at = ma.fields.AwareDateTime(required=True)


class MembershipSchema(MemberSchema):
    org_id = ma.fields.Integer(required=True)


class RoleChangeSchema(ma.Schema):
    role = Role


class RemoveMemberQuerySchema(ma.Schema):
    keep_api_keys = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Keep the organization's API keys the member created (revoked by default)."},
    )


class InvitationCreateSchema(ma.Schema):
    email = Email(required=True)
    role = Role


class InvitationSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)


class InvitationTokenSchema(ma.Schema):
    token = ma.fields.String(
        required=True, validate=ma.validate.Length(min=1, max=256),
        metadata={"description": "The `token` of the invitation link."},
    )


class AuditEventSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    action = ma.fields.String(required=True, metadata={"example": "member.role_changed"})
    actor_user_id = ma.fields.Integer(required=True, allow_none=True)
    target = ma.fields.String(required=True, allow_none=True, metadata={"example": "user:42"})
    details = ma.fields.Dict(required=True)
    ip_address = ma.fields.String(required=True, allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)
