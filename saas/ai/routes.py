"""Chat completions: answered at once, streamed as Server-Sent Events, or run as background jobs."""
from flask_jwt_extended import current_user
from flask_smorest import Blueprint

from saas.ai import service
from saas.ai.schemas import AiJobSchema, ChatRequestSchema, CompletionRequestSchema, CompletionSchema
from saas.apikeys.auth import TOKEN_OR_API_KEY, jwt_or_api_key_required

blp = Blueprint("ai", __name__, url_prefix="/api/v1/ai", description="Model calls, metered against the plan's quota.")

# Credentials are checked outermost, so a caller without any gets 401 before the body is read.


@blp.route("/chat", methods=["POST"])
@jwt_or_api_key_required()
@blp.arguments(ChatRequestSchema)
@blp.response(200, CompletionSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS", description="The monthly token quota would be exceeded.")
@blp.alt_response(502, response="BAD_GATEWAY")
@blp.alt_response(504, response="GATEWAY_TIMEOUT")
@blp.doc(
    security=TOKEN_OR_API_KEY,
    responses={
        "200": {
            "description": "The completion, or with `stream` a `text/event-stream`.",
            "content": {
                "application/json": {"schema": CompletionSchema},
                # One schema per event, the way SSE-aware tools (schemathesis) read a stream.
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {
                            "event": {"type": "string", "enum": ["delta", "usage", "error"]},
                            "data": {"type": "string", "description": "JSON text of the event"},
                        },
                    }
                },
            },
        }
    },
)
def chat(fields):
    """Complete a conversation with the configured model (AI_MODEL unless `model` is given).

    The answer carries the token usage, which counts against the monthly quota. With
    `"stream": true` the answer is Server-Sent Events: `event: delta` with `{"content": ...}`
    as tokens arrive, then `event: usage` with the token counts. A provider failure before the
    first token is a JSON 502/504; after it, an `event: error` precedes the usage event.
    """
    return service.chat(current_user, **fields)


@blp.route("/jobs", methods=["POST"])
@jwt_or_api_key_required()
@blp.arguments(CompletionRequestSchema)
@blp.response(202, AiJobSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS", description="The monthly token quota is used up.")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
@blp.doc(security=TOKEN_OR_API_KEY)
def submit_job(fields):
    """Queue a completion to run in the background; poll `GET /api/v1/ai/jobs/{id}` for it.

    The job is kept in the database and runs in `rq worker`; its usage counts like a chat's.
    """
    return service.submit_job(current_user, **fields)


@blp.route("/jobs/<uuid:job_id>", methods=["GET"])
@jwt_or_api_key_required()
@blp.response(200, AiJobSchema)
@blp.alt_response(401, response="UNAUTHORIZED")
@blp.alt_response(404, response="NOT_FOUND")
@blp.doc(security=TOKEN_OR_API_KEY)
def get_job(job_id):
    """A job's status (`queued`, `running`, `succeeded`, `failed`) and its result or error.

    The error has the API's error shape (`code`, `status`, `message`). Only the job's owner
    can see it: any other id is a 404.
    """
    return service.get_job(current_user, str(job_id))
