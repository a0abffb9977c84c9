"""Chat completions metered against an organization's quota: at once, streamed, or in the
background. ``org`` is whose quota a call uses, ``user`` who makes it."""
import logging
import time
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from saas.ai import provider
from saas.ai.models import FAILED, QUEUED, RUNNING, AiJob
from saas.core.database import fields_of, transaction
from saas.core.errors import DomainError, InvalidInput, NotFound, envelope, envelope_of
from saas.core.queue import job_id, job_is_lost
from saas.core.time import utcnow
from saas.extensions import db
from saas.users import events as user_events
from saas.usage.service import Reservation, extend, release, reserve, reserved, settle
from saas.webhooks import events as webhook_events

log = logging.getLogger(__name__)

# Providers tokenise differently and we ship no tokenizer; about 4 characters make a token in
# English, so counting 3 errs on the side of reserving too much.
CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4
CHAT_JOB = "ai-chat"
# A stream renews its reservation at least this often (more often with a shorter AI_TIMEOUT).
RENEWAL_MAX_SECONDS = 30


class ModelNotAllowed(InvalidInput):
    message = "Model not allowed."


class MaxTokensTooLarge(InvalidInput):
    message = "max_tokens is too large."


class NoSuchJob(NotFound):
    message = "No such job."


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
        raise ModelNotAllowed(field="model", reason=f"Choose one of: {', '.join(allowed)}.")
    return model


def resolve_max_tokens(max_tokens):
    ceiling = current_app.config["AI_MAX_TOKENS"]
    if max_tokens is None:
        return ceiling
    if max_tokens > ceiling:
        raise MaxTokensTooLarge(field="max_tokens", reason=f"At most {ceiling}.")
    return max_tokens


def usage_dict(usage):
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def call_tokens(messages, max_tokens):
    """What a call reserves: its prompt estimate plus the most it may generate."""
    return estimate_prompt_tokens(messages) + max_tokens


def complete(org, user, messages, *, model=None, max_tokens=None, request_id=None):
    """One metered completion: reserve the quota, call the provider, settle what it used."""
    model, max_tokens = resolve_model(model), resolve_max_tokens(max_tokens)
    reservation = reserve(
        org, user, model=model, tokens=call_tokens(messages, max_tokens), hold_for=longest_run(), request_id=request_id
    )
    return complete_reserved(reservation, messages, max_tokens=max_tokens)


def complete_reserved(reservation, messages, *, max_tokens):
    """The completion a reservation was taken for. A call that fails is not counted (the
    provider reports no usage for it): its reservation is given back."""
    model, prompt_tokens = reservation.model, estimate_prompt_tokens(messages)
    try:
        completion = provider.chat_completion(messages, model=model, max_tokens=max_tokens)
    except Exception:
        release(reservation)
        raise
    usage = completion.usage or provider.Usage(prompt_tokens, estimate_tokens(completion.content))
    settle(reservation, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, model=completion.model)
    return {
        "id": completion.id,
        "model": completion.model,
        "content": completion.content,
        "finish_reason": completion.finish_reason,
        "usage": usage_dict(usage),
    }


def stream_completion(org, user, messages, *, model=None, max_tokens=None, request_id=None):
    """Start a metered, streamed completion; returns the ``(event, data)`` pairs to relay.

    Quota and connection problems are raised here, before the first event, so the client
    still gets them as JSON errors. The pairs are ``("delta", {"content"})`` as tokens arrive,
    then ``("usage", {...})``; a failure midway becomes an ``("error", envelope)`` pair.
    """
    model, max_tokens = resolve_model(model), resolve_max_tokens(max_tokens)
    prompt_tokens = estimate_prompt_tokens(messages)
    with reserved(
        org, user, model=model, tokens=prompt_tokens + max_tokens, hold_for=longest_run(), request_id=request_id
    ) as reservation:
        stream = provider.open_chat_stream(messages, model=model, max_tokens=max_tokens)
    return _relayed_events(stream, reservation, prompt_tokens)


def _relayed_events(stream, reservation, prompt_tokens):
    pieces = []
    settled = None
    renew = _renewal(reservation)
    try:
        try:
            for piece in stream:
                pieces.append(piece)
                renew()
                yield "delta", {"content": piece}
        except DomainError as error:  # the 200 is sent already: the failure becomes an event
            yield "error", envelope_of(error)
        settled = _settle_stream(stream, reservation, prompt_tokens, pieces)
        yield "usage", settled
    finally:
        stream.close()
        if settled is None:  # the client went away mid-answer: what was generated still counts
            _settle_stream(stream, reservation, prompt_tokens, pieces)


def _renewal(reservation):
    """What a stream calls at each piece: it holds the reservation for a longest run from now
    again, at most once every AI_TIMEOUT (30 s at most), so the sweep never forgets the
    reservation of a stream still being answered, however long it lasts. The provider sends
    pieces at most AI_TIMEOUT apart (a longer silence is a read timeout) and a hold lasts more
    than AI_TIMEOUT plus a minute: it is renewed long before it ends, unless the client stops
    reading for that long (``settle`` records the usage then all the same)."""
    hold = longest_run()
    every = min(current_app.config["AI_TIMEOUT"], RENEWAL_MAX_SECONDS)
    renew_at = time.monotonic() + every

    def renew():
        nonlocal renew_at
        if time.monotonic() < renew_at:
            return
        renew_at = time.monotonic() + every
        try:
            extend(reservation, hold)  # a use case of its own: rolled back if it fails
        except sa.exc.SQLAlchemyError:  # the answer goes on; settling records it anyway
            log.warning("could not renew reservation %s", reservation.record_id, exc_info=True)

    return renew


def _settle_stream(stream, reservation, prompt_tokens, pieces):
    usage = stream.usage or provider.Usage(prompt_tokens, estimate_tokens("".join(pieces)) if pieces else 0)
    settle(reservation, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, model=stream.model)
    return {**usage_dict(usage), "model": stream.model, "finish_reason": stream.finish_reason}


def get_job(user, stored_id, *, org_id=None):
    """The user's job; another user's job is answered as missing (404). An organization's API
    key (``org_id``) sees only the jobs run for that organization."""
    job = db.session.get(AiJob, stored_id)
    if job is None or job.user_id != user.id or (org_id is not None and job.org_id != org_id):
        raise NoSuchJob()
    fail_if_orphaned(job)
    return job


def fail_if_orphaned(job):
    """Mark failed a job that will never finish: running past its longest run, or no longer held
    by RQ (Redis lost it, it failed before it could claim the row, or its worker was killed or
    stopped vouching for it and RQ gave it up); one lost before it ran gives its reservation back
    (see ``_mark_failed``). Returns whether it did."""
    if job.status == RUNNING and job.started_at < utcnow() - longest_run():
        return _mark_failed(job, RUNNING, "The job was interrupted before it finished; submit it again.")
    if job.status in (QUEUED, RUNNING) and job_is_lost(job_id(CHAT_JOB, job.id)):
        if job.status == QUEUED:
            return _mark_failed(job, QUEUED, "The job was lost before it ran; submit it again.")
        return _mark_failed(job, RUNNING, "The job was interrupted before it finished; submit it again.")
    return False


def fail_orphaned_jobs(limit=None):
    """``fail_if_orphaned`` for every queued or running job; returns how many it failed."""
    jobs = db.session.scalars(
        sa.select(AiJob).where(AiJob.status.in_((QUEUED, RUNNING))).order_by(AiJob.created_at).limit(limit)
    ).all()
    return sum(bool(fail_if_orphaned(job)) for job in jobs)


def job_reservation(job):
    """The reservation a job took when it was submitted (None for jobs from before that)."""
    if job.usage_record_id is None:
        return None
    return Reservation(
        job.usage_record_id, call_tokens(job.messages, job.max_tokens), job.model, job.user_id, job.org_id,
        job.request_id,
    )


def longest_run():
    """How long a running job can last: every provider attempt timing out, plus a margin."""
    config = current_app.config
    return timedelta(seconds=config["AI_TIMEOUT"] * (config["AI_MAX_RETRIES"] + 1) + 60)


def _mark_failed(job, expected_status, message):
    # A worker killed mid-job (OOM, deploy without graceful stop) or a queue entry that is gone
    # never records an outcome; say so instead of leaving the client polling forever.
    with transaction():
        failed = db.session.execute(
            sa.update(AiJob)
            .where(AiJob.id == job.id, AiJob.status == expected_status)
            .values(status=FAILED, finished_at=utcnow(), error=envelope(504, message))
        ).rowcount
        if failed:
            webhook_events.ai_job_finished(job, status=FAILED, error=envelope(504, message))
    db.session.refresh(job)
    reservation = job_reservation(job)
    # What a job lost before it ran held goes back to the quota. One that started may still be
    # running (its worker only stopped vouching for it): its reservation holds until its longest
    # run is over, when RQ has ended it for sure (job_timeout), and the sweep forgets it then.
    if failed and expected_status == QUEUED and reservation is not None:
        release(reservation)
    return bool(failed)


JOB_EXPORT = ("id", "org_id", "status", "model", "max_tokens", "messages", "result", "error", "created_at",
              "finished_at")


def connect_signals():
    """A deleted account's jobs go (prompts and answers are personal data; the usage they
    caused stays, for accounting); an export includes them."""
    user_events.account_deleting.connect(_delete_jobs, weak=False)
    user_events.account_export.connect(_export_jobs, weak=False)


def _delete_jobs(user, **_):
    db.session.execute(sa.delete(AiJob).where(AiJob.user_id == user.id))


def _export_jobs(user, **_):
    jobs = db.session.scalars(sa.select(AiJob).where(AiJob.user_id == user.id).order_by(AiJob.created_at))
    return {"ai_jobs": [fields_of(job, JOB_EXPORT) for job in jobs]}
