"""Chat completions metered against the user's quota: at once, streamed, or in the background."""
import json
import logging
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import Response, current_app, g, stream_with_context
from flask_smorest import abort
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from werkzeug.exceptions import HTTPException

from saas.ai import provider
from saas.ai.models import FAILED, QUEUED, RUNNING, AiJob
from saas.api import error_payload
from saas.extensions import db
from saas.jobs import enqueue
from saas.redis_client import get_redis
from saas.usage.service import check_quota, reserved, settle

log = logging.getLogger(__name__)

# RQ states in which a job will never run our function again.
LOST_STATUSES = (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)

# Providers tokenise differently and we ship no tokenizer; about 4 characters make a token in
# English, so counting 3 errs on the side of reserving too much.
CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4


def estimate_tokens(text):
    return len(text) // CHARS_PER_TOKEN + 1


def estimate_prompt_tokens(messages):
    return sum(estimate_tokens(message["content"]) + TOKENS_PER_MESSAGE for message in messages)


def resolve_model(model):
    """AI_MODEL by default; another model only if AI_ALLOWED_MODELS names it."""
    config = current_app.config
    allowed = [config["AI_MODEL"], *config["AI_ALLOWED_MODELS"]]
    if model is None:
        return config["AI_MODEL"]
    if model not in allowed:
        abort(422, message="Model not allowed.", errors={"json": {"model": [f"Choose one of: {', '.join(allowed)}."]}})
    return model


def resolve_max_tokens(max_tokens):
    ceiling = current_app.config["AI_MAX_TOKENS"]
    if max_tokens is None:
        return ceiling
    if max_tokens > ceiling:
        abort(422, message="max_tokens is too large.", errors={"json": {"max_tokens": [f"At most {ceiling}."]}})
    return max_tokens


def usage_dict(usage):
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def chat(user, *, messages, model=None, max_tokens=None, stream=False):
    """A completion for ``messages``: a dict, or with ``stream`` a text/event-stream response."""
    model, max_tokens = resolve_model(model), resolve_max_tokens(max_tokens)
    if stream:
        return stream_chat(user, messages, model=model, max_tokens=max_tokens, request_id=g.get("request_id"))
    return complete(user, messages, model=model, max_tokens=max_tokens, request_id=g.get("request_id"))


def complete(user, messages, *, model, max_tokens, request_id):
    """One metered completion: reserve the quota, call the provider, settle what it used.

    A call that fails is not counted: the provider reports no usage for it.
    """
    prompt_tokens = estimate_prompt_tokens(messages)
    with reserved(user, model=model, tokens=prompt_tokens + max_tokens, request_id=request_id) as reservation:
        completion = provider.chat_completion(messages, model=model, max_tokens=max_tokens)
    usage = completion.usage or provider.Usage(prompt_tokens, estimate_tokens(completion.content))
    settle(reservation, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, model=completion.model)
    return {
        "id": completion.id,
        "model": completion.model,
        "content": completion.content,
        "finish_reason": completion.finish_reason,
        "usage": usage_dict(usage),
    }


def stream_chat(user, messages, *, model, max_tokens, request_id):
    """Relay the provider's tokens as Server-Sent Events, ending with a ``usage`` event.

    Quota and connection problems are still answered as JSON errors: the provider's status is
    known before the first event is sent.
    """
    prompt_tokens = estimate_prompt_tokens(messages)
    with reserved(user, model=model, tokens=prompt_tokens + max_tokens, request_id=request_id) as reservation:
        stream = provider.open_chat_stream(messages, model=model, max_tokens=max_tokens)
    return Response(
        stream_with_context(_relay(stream, reservation, prompt_tokens)),
        mimetype="text/event-stream",
        # Proxies (nginx) must pass each event on at once instead of buffering the answer.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _relay(stream, reservation, prompt_tokens):
    pieces = []
    settled = None
    try:
        try:
            for piece in stream:
                pieces.append(piece)
                yield _event("delta", {"content": piece})
        except HTTPException as error:  # the 200 is sent already: the failure becomes an event
            yield _event("error", error_payload(error.code, error.description))
        settled = _settle_stream(stream, reservation, prompt_tokens, pieces)
        yield _event("usage", settled)
    finally:
        stream.close()
        if settled is None:  # the client went away mid-answer: what was generated still counts
            _settle_stream(stream, reservation, prompt_tokens, pieces)


def _settle_stream(stream, reservation, prompt_tokens, pieces):
    usage = stream.usage or provider.Usage(prompt_tokens, estimate_tokens("".join(pieces)) if pieces else 0)
    settle(reservation, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, model=stream.model)
    return {**usage_dict(usage), "model": stream.model, "finish_reason": stream.finish_reason}


def _event(name, data):
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def submit_job(user, *, messages, model=None, max_tokens=None):
    """Store a chat job and queue it for ``rq worker``; refused at once if over quota."""
    from saas.ai.jobs import run_chat_job

    model, max_tokens = resolve_model(model), resolve_max_tokens(max_tokens)
    check_quota(user, estimate_prompt_tokens(messages) + max_tokens)
    job = AiJob(
        user_id=user.id, model=model, max_tokens=max_tokens, messages=messages, request_id=g.get("request_id")
    )
    db.session.add(job)
    db.session.commit()
    job_id = job.id
    try:
        # RQ's default 180 s limit could kill a slow but healthy call and lose its usage.
        enqueue(
            run_chat_job, job_id, backoff=None, job_id=f"ai-chat-{job_id}",
            job_timeout=int(_longest_run().total_seconds()),
        )
    except RedisError:
        db.session.delete(job)
        db.session.commit()
        raise
    return db.session.get(AiJob, job_id)


def get_job(user, job_id):
    """The user's job; another user's job is answered as missing (404)."""
    job = db.session.get(AiJob, job_id)
    if job is None or job.user_id != user.id:
        abort(404, message="No such job.")
    if job.status == RUNNING and job.started_at < datetime.now(timezone.utc) - _longest_run():
        _mark_failed(job, RUNNING, "The job was interrupted before it finished; submit it again.")
    elif job.status == QUEUED and _queue_lost(job):
        _mark_failed(job, QUEUED, "The job was lost before it ran; submit it again.")
    return job


def _queue_lost(job):
    """Whether RQ no longer holds a job that is still queued here (Redis lost it, or it failed
    before it could claim the row, e.g. a worker whose app would not start)."""
    connection = get_redis()
    if connection is None:
        return False
    try:
        return Job.fetch(f"ai-chat-{job.id}", connection=connection).get_status() in LOST_STATUSES
    except NoSuchJobError:
        return True
    except RedisError:  # cannot tell now; the job keeps its state and the next read checks again
        return False


def _longest_run():
    """How long a running job can last: every provider attempt timing out, plus a margin."""
    config = current_app.config
    return timedelta(seconds=config["AI_TIMEOUT"] * (config["AI_MAX_RETRIES"] + 1) + 60)


def _mark_failed(job, expected_status, message):
    # A worker killed mid-job (OOM, deploy without graceful stop) or a queue entry that is gone
    # never records an outcome; say so instead of leaving the client polling forever.
    db.session.execute(
        sa.update(AiJob)
        .where(AiJob.id == job.id, AiJob.status == expected_status)
        .values(status=FAILED, finished_at=datetime.now(timezone.utc), error=error_payload(504, message))
    )
    db.session.commit()
    db.session.refresh(job)
