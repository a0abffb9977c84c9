import marshmallow as ma

from saas.web.fields import Email, GivenPassword, NewPassword, Text


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
