import marshmallow as ma

from saas.web.fields import Email, GivenPassword, NewPassword, Text


class UserSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    email = ma.fields.String(required=True, metadata={"format": "email"})
    full_name = ma.fields.String(allow_none=True, required=True)
    is_active = ma.fields.Boolean(required=True)
    is_superuser = ma.fields.Boolean(required=True)
    email_verified = ma.fields.Boolean(
        required=True, metadata={"description": "Whether the owner confirmed the address with a mailed link."}
    )
    stripe_customer_id = ma.fields.String(
        allow_none=True, required=True, attribute="personal_org.stripe_customer_id",
        metadata={"description": "The Stripe customer of the user's personal organization."},
    )
    mfa_enabled = ma.fields.Boolean(
        required=True, metadata={"description": "Whether logging in needs a second factor (an authenticator app)."}
    )
    has_password = ma.fields.Boolean(
        required=True,
        metadata={"description": "False for an account made by a social login until its owner sets a password "
                  "(`POST /api/v1/auth/password-reset`); the actions that ask for `current_password` answer 409 "
                  "until then."},
    )
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    plan = ma.fields.String(
        attribute="personal_org.effective_plan",
        required=True,
        dump_only=True,
        metadata={"description": 'The plan of the user\'s personal organization now; "free" without a paid '
                  "subscription."},
    )


# With two-factor on, the sensitive account actions need a code too (401 when missing or wrong).
def _second_factor_code():
    return ma.fields.String(
        load_only=True, validate=ma.validate.Length(min=1, max=64),
        metadata={"description": "With two-factor on: a current authenticator code or an unused recovery code."},
    )


class UserUpdateSchema(ma.Schema):
    """Only these fields can change; anything else (email, is_superuser...) is a 422."""

    full_name = Text(max_length=255, allow_none=True)
    password = NewPassword(metadata={"description": "The new password; needs current_password (and code)."})
    current_password = GivenPassword()
    code = _second_factor_code()

    @ma.validates_schema
    def password_change_needs_current_password(self, data, **kwargs):
        if "password" in data and "current_password" not in data:
            raise ma.ValidationError(
                "current_password is required to change the password.", "current_password"
            )


class EmailChangeSchema(ma.Schema):
    email = Email(required=True, metadata={"description": "The new address; a confirmation link is sent to it."})
    current_password = GivenPassword(required=True)
    code = _second_factor_code()


class AcceptedSchema(ma.Schema):
    message = ma.fields.String(required=True)


class AccountDeletionSchema(ma.Schema):
    current_password = GivenPassword(required=True)
    code = _second_factor_code()


def _section(description):
    return ma.fields.List(ma.fields.Dict(), required=True, metadata={"description": description})


class AccountExportSchema(ma.Schema):
    profile = ma.fields.Dict(required=True, metadata={"description": "The account, as stored."})
    sessions = _section("Every login session, open or ended: when, from which address and client.")
    api_keys = _section("Every API key the user created (personal and organization keys); never the secret.")
    organizations = _section("The organizations the user belongs to, with their role.")
    invitations = _section("Invitations the user accepted.")
    audit_events = _section("Audit events of which the user is the actor.")
    subscriptions = _section("The subscriptions of the user's personal organization.")
    usage = _section("Every AI call the user made, in any organization: tokens and model.")
    ai_jobs = _section("AI jobs with their prompts and results.")
    identities = _section("The provider accounts (Google, GitHub...) linked for signing in: provider, address, when.")
    two_factor = ma.fields.Dict(
        required=True, metadata={"description": "Whether two-factor is on, since when, and recovery codes left (never a secret)."}
    )
    mail = _section("Messages mailed to or about the account (never their links), found by the account, never by "
                    "the address.")
