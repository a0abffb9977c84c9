import marshmallow as ma

from saas.orgs.models import ADMIN, MEMBER
from saas.web.fields import Email, Text

# What SSO may make of a new member: never an owner (an owner is made by an owner).
SSO_ROLES = (MEMBER, ADMIN)


class DomainCreateSchema(ma.Schema):
    domain = Text(
        required=True, min_length=1, max_length=253,
        metadata={"example": "acme.com", "description": "A domain the organization controls (not a public mail "
                  "domain such as gmail.com); an internationalised one in Unicode or in its xn-- form."},
    )


class DomainSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    domain = ma.fields.String(required=True, metadata={"example": "acme.com"})
    verified = ma.fields.Boolean(required=True)
    txt_name = ma.fields.String(
        required=True, metadata={"example": "_saas-challenge.acme.com", "description": "Where to publish the TXT record."}
    )
    txt_value = ma.fields.String(
        required=True,
        metadata={"example": "saas-verification=3q2-7Zx...", "description": "What the TXT record must hold."},
    )
    created_at = ma.fields.AwareDateTime(required=True)
    verified_at = ma.fields.AwareDateTime(required=True, allow_none=True)


class ConnectionUpdateSchema(ma.Schema):
    issuer = ma.fields.Url(
        required=True, schemes={"https", "http"}, require_tld=False, validate=ma.validate.Length(max=512),
        metadata={"example": "https://acme.okta.com", "description": "The provider's issuer, exactly as its "
                  "discovery document (`<issuer>/.well-known/openid-configuration`) names it."},
    )
    client_id = Text(required=True, min_length=1, max_length=255)
    client_secret = Text(required=True, min_length=1, max_length=1024, load_only=True,
                         metadata={"description": "Stored encrypted; never answered."})
    enforce = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Accounts on the organization's verified domains may only log in through it "
                  "(owners with two-factor on keep password login: break glass)."},
    )
    default_role = ma.fields.String(
        load_default=MEMBER, validate=ma.validate.OneOf(SSO_ROLES),
        metadata={"description": "The role of an account that SSO makes a member: `member` or `admin`."},
    )


class ConnectionSchema(ma.Schema):
    issuer = ma.fields.String(required=True)
    client_id = ma.fields.String(required=True)
    enforce = ma.fields.Boolean(required=True)
    default_role = ma.fields.String(required=True)
    redirect_uri = ma.fields.String(
        required=True, metadata={"description": "Register this exact URL at the provider as the redirect (callback) URI."}
    )
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class StartSchema(ma.Schema):
    email = Email(required=True)


class OrganizationRefSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    name = ma.fields.String(required=True)


class StartResultSchema(ma.Schema):
    authorize_url = ma.fields.String(
        required=True, metadata={"description": "Send the browser here (a navigation, not a fetch) to sign in."}
    )
    organization = ma.fields.Nested(OrganizationRefSchema, required=True)


class SsoAuthorizeQuerySchema(ma.Schema):
    email = Email(required=True)
