import marshmallow as ma

# What the flow hands around (states, codes, link intents): 43 URL-safe characters; a little room.
_Token = ma.validate.Length(min=1, max=256)


class ProviderSchema(ma.Schema):
    name = ma.fields.String(required=True, metadata={"example": "github"})
    display_name = ma.fields.String(required=True, metadata={"example": "GitHub"})
    authorize_url = ma.fields.String(
        required=True, metadata={"description": "Send the browser here (a navigation, not a fetch) to sign in."}
    )


class AuthorizeQuerySchema(ma.Schema):
    intent = ma.fields.String(
        validate=_Token,
        metadata={"description": "A link intent, as in the `authorize_url` of `POST /api/v1/users/me/identities/{provider}`."},
    )


class CallbackQuerySchema(ma.Schema):
    """What the provider sends the browser back with (other parameters are ignored)."""

    code = ma.fields.String(validate=ma.validate.Length(max=2048))
    state = ma.fields.String(validate=ma.validate.Length(max=2048))
    error = ma.fields.String(validate=ma.validate.Length(max=256))
    error_description = ma.fields.String(validate=ma.validate.Length(max=2048))


class ExchangeSchema(ma.Schema):
    code = ma.fields.String(
        required=True, validate=_Token,
        metadata={"description": "The `code` the front-end callback page received; works once, for 60 seconds."},
    )


class IdentitySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    provider = ma.fields.String(required=True, metadata={"example": "github"})
    email = ma.fields.String(
        required=True, allow_none=True,
        metadata={"description": "The address the provider gave at the last sign-in (shown only; accounts are "
                  "never found by it)."},
    )
    created_at = ma.fields.AwareDateTime(required=True)


class LinkStartSchema(ma.Schema):
    authorize_url = ma.fields.String(
        required=True,
        metadata={"description": "Send this browser here to sign in at the provider; works once, for 10 minutes."},
    )


class LinkConfirmSchema(ma.Schema):
    code = ma.fields.String(
        required=True, validate=_Token,
        metadata={"description": "The `link_code` the front-end callback page received."},
    )
