import marshmallow as ma

from saas.web.fields import Email, GivenPassword, NewPassword, Text

# A TOTP code (6 digits) or a recovery code ("xxxxxx-xxxxxx", any case, with or without the dash).
SecondFactorCode = ma.fields.String(
    required=True, validate=ma.validate.Length(min=1, max=64),
    metadata={"description": "The current 6-digit code of the authenticator app, or one unused recovery code.",
              "example": "123456"},
)


class RegisterSchema(ma.Schema):
    email = Email(required=True)
    password = NewPassword(required=True)
    full_name = Text(max_length=255, allow_none=True)


class LoginSchema(ma.Schema):
    email = Email(required=True)
    password = GivenPassword(required=True)


class OAuth2PasswordFormSchema(ma.Schema):
    """The OAuth2 password grant form (what Swagger UI and the seed's clients send)."""

    username = Email(required=True, metadata={"description": "The account's email address."})
    password = GivenPassword(required=True)
    grant_type = ma.fields.String(validate=ma.validate.Equal("password"))
    scope = ma.fields.String()
    client_id = ma.fields.String()
    client_secret = ma.fields.String(load_only=True)


class RefreshSchema(ma.Schema):
    refresh_token = ma.fields.String(
        metadata={"description": "Or send it as `Authorization: Bearer <refresh token>`."}
    )


class TokenSchema(ma.Schema):
    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "bearer"})
    expires_in = ma.fields.Integer(
        required=True, metadata={"description": "Seconds until the access token expires."}
    )


class VerifyEmailSchema(ma.Schema):
    token = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2048),
                             metadata={"description": "The `token` of the link in the message."})


class PasswordResetSchema(ma.Schema):
    email = Email(required=True)


class PasswordResetConfirmSchema(ma.Schema):
    token = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=2048),
                             metadata={"description": "The `token` of the link in the reset message."})
    password = NewPassword(required=True)


class MfaRequiredSchema(ma.Schema):
    """What a login of an account with two-factor on answers instead of tokens."""

    mfa_required = ma.fields.Boolean(required=True, metadata={"example": True})
    mfa_token = ma.fields.String(
        required=True, metadata={"description": "Send it with a code to `POST /api/v1/auth/mfa/verify`; works once."}
    )
    mfa_methods = ma.fields.List(ma.fields.String(), required=True, metadata={"example": ["totp", "recovery_code"]})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "Seconds the mfa_token lives (MFA_TOKEN_SECONDS)."})


class LoginResultSchema(ma.Schema):
    """Either the token pair or, for an account with two-factor on, the second-factor step.
    Only the fields of the one it is are sent (see the response's `oneOf`)."""

    access_token = ma.fields.String()
    refresh_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer()
    mfa_required = ma.fields.Boolean()
    mfa_token = ma.fields.String()
    mfa_methods = ma.fields.List(ma.fields.String())


# The OpenAPI answer of every way of logging in (a password, a social login's one-time code):
# only the fields of the one it is are sent.
LOGIN_RESULT_RESPONSES = {"200": {
    "description": "The token pair, or the second-factor step for an account with two-factor on.",
    "content": {"application/json": {"schema": {"oneOf": [TokenSchema, MfaRequiredSchema]}}},
}}


class MfaVerifySchema(ma.Schema):
    mfa_token = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=256))
    code = SecondFactorCode


class MfaStatusSchema(ma.Schema):
    enabled = ma.fields.Boolean(required=True)
    methods = ma.fields.List(ma.fields.String(), required=True, metadata={"example": ["totp", "recovery_code"]})
    recovery_codes_remaining = ma.fields.Integer(required=True)


class CurrentPasswordSchema(ma.Schema):
    current_password = GivenPassword(required=True)


class TotpSetupSchema(ma.Schema):
    secret = ma.fields.String(required=True, metadata={"description": "The base32 secret, to type in by hand."})
    otpauth_uri = ma.fields.String(
        required=True, metadata={"description": "otpauth://totp/... naming APP_NAME as issuer and the email as account."}
    )
    qr_svg = ma.fields.String(required=True, metadata={"description": "The URI as a QR code, an SVG document."})


class CodeSchema(ma.Schema):
    code = SecondFactorCode


class PasswordAndCodeSchema(ma.Schema):
    current_password = GivenPassword(required=True)
    code = SecondFactorCode


class RecoveryCodesSchema(ma.Schema):
    recovery_codes = ma.fields.List(
        ma.fields.String(), required=True,
        metadata={"description": "Ten single-use codes, shown this once: store them somewhere safe."},
    )


class SessionSchema(ma.Schema):
    id = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    last_refreshed_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    user_agent = ma.fields.String(required=True, allow_none=True)
    ip_address = ma.fields.String(required=True, allow_none=True)
    methods = ma.fields.List(
        ma.fields.String(), required=True, attribute="method_list",
        metadata={"description": 'How it was authenticated: "password", "mfa", "oauth", "sso".'},
    )
    current = ma.fields.Boolean(required=True, metadata={"description": "Whether this request uses it."})
