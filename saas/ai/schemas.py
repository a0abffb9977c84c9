import marshmallow as ma

from saas.ai.models import FAILED, QUEUED, RUNNING, SUCCEEDED

ROLES = ("system", "developer", "user", "assistant")


class MessageSchema(ma.Schema):
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))
    content = ma.fields.String(required=True, validate=ma.validate.Length(max=100_000))


class CompletionRequestSchema(ma.Schema):
    messages = ma.fields.List(
        ma.fields.Nested(MessageSchema), required=True, validate=ma.validate.Length(min=1, max=200)
    )
    model = ma.fields.String(
        validate=ma.validate.Length(min=1, max=255),
        metadata={"description": "AI_MODEL when omitted; others must be in AI_ALLOWED_MODELS."},
    )
    max_tokens = ma.fields.Integer(
        strict=True,
        validate=ma.validate.Range(min=1),
        metadata={"description": "Most tokens to generate; AI_MAX_TOKENS when omitted, and at most that."},
    )


class ChatRequestSchema(CompletionRequestSchema):
    stream = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Answer with Server-Sent Events: `delta` events `{content}` as tokens "
            "arrive, then one `usage` event; an `error` event if the provider fails midway."
        },
    )


class TokenUsageSchema(ma.Schema):
    input_tokens = ma.fields.Integer(required=True)
    output_tokens = ma.fields.Integer(required=True)
    total_tokens = ma.fields.Integer(required=True)


class CompletionSchema(ma.Schema):
    id = ma.fields.String(allow_none=True, metadata={"description": "The provider's completion id."})
    model = ma.fields.String(required=True)
    content = ma.fields.String(required=True)
    finish_reason = ma.fields.String(allow_none=True, metadata={"example": "stop"})
    usage = ma.fields.Nested(TokenUsageSchema, required=True)


class JobErrorSchema(ma.Schema):
    code = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    errors = ma.fields.Dict()


class AiJobSchema(ma.Schema):
    id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf((QUEUED, RUNNING, SUCCEEDED, FAILED)))
    model = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    started_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    finished_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    result = ma.fields.Nested(CompletionSchema, allow_none=True, required=True)
    error = ma.fields.Nested(JobErrorSchema, allow_none=True, required=True)
