"""Chat completions: answered at once, streamed as Server-Sent Events, or run as background jobs."""
import json

from flask import Response, stream_with_context

from saas.ai import jobs, service
from saas.ai.schemas import AiJobSchema, ChatRequestSchema, CompletionRequestSchema, CompletionSchema
from saas.core.permissions import Permission
from saas.web.api import API_KEY, SESSION
from saas.web.blueprint import ApiBlueprint, current_principal
from saas.web.edge import current_request_id

blp = ApiBlueprint(
    "ai", __name__, url_prefix="/ai", description="Model calls, metered against the plan's quota.",
    requires_verified_email=True,
)

# Proxies (nginx) must pass each event on at once instead of buffering the answer.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def server_sent_events(events):
    """Frame ``(event, data)`` pairs as Server-Sent Events."""
    for name, data in events:
        yield f"event: {name}\ndata: {json.dumps(data)}\n\n"


@blp.route("/chat", methods=["POST"])
@blp.auth(SESSION, API_KEY, org="acting", permission=Permission.AI_USE)
@blp.arguments(ChatRequestSchema)
@blp.response(200, CompletionSchema)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS", description="The monthly token quota would be exceeded.")
@blp.alt_response(502, response="BAD_GATEWAY")
@blp.alt_response(504, response="GATEWAY_TIMEOUT")
@blp.doc(
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

    The answer carries the token usage, which counts against the monthly quota of the
    organization the call acts for (an organization's API key's, the one `X-Org-Id` names, else
    the caller's personal one). With
    `"stream": true` the answer is Server-Sent Events: `event: delta` with `{"content": ...}`
    as tokens arrive, then `event: usage` with the token counts. A provider failure before the
    first token is a JSON 502/504; after it, an `event: error` precedes the usage event.
    """
    principal, stream = current_principal(), fields.pop("stream")
    if not stream:
        return service.complete(principal.org, principal.user, request_id=current_request_id(), **fields)
    events = service.stream_completion(principal.org, principal.user, request_id=current_request_id(), **fields)
    return Response(
        stream_with_context(server_sent_events(events)), mimetype="text/event-stream", headers=STREAM_HEADERS
    )


@blp.route("/jobs", methods=["POST"])
@blp.auth(SESSION, API_KEY, org="acting", permission=Permission.AI_USE)
@blp.arguments(CompletionRequestSchema)
@blp.response(202, AiJobSchema)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
@blp.alt_response(429, response="TOO_MANY_REQUESTS", description="The monthly token quota is used up.")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE")
def submit_job(fields):
    """Queue a completion to run in the background; poll `GET /api/v1/ai/jobs/{id}` for it.

    The job is kept in the database and runs in `rq worker`; its usage counts like a chat's.
    """
    principal = current_principal()
    return jobs.submit_job(principal.org, principal.user, request_id=current_request_id(), **fields)


@blp.route("/jobs/<uuid:job_id>", methods=["GET"])
@blp.auth(SESSION, API_KEY)
@blp.response(200, AiJobSchema)
@blp.alt_response(404, response="NOT_FOUND")
def get_job(job_id):
    """A job's status (`queued`, `running`, `succeeded`, `failed`) and its result or error.

    The error has the API's error shape (`code`, `status`, `message`). Only the job's owner
    can see it (with an organization's API key, only the jobs run for that organization): any
    other id is a 404.
    """
    principal = current_principal()
    return service.get_job(principal.user, str(job_id), org_id=principal.api_key_org_id)
