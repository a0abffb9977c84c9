"""Chat jobs: queued on ``default`` by ``submit_job``, run by the worker; their outcome is kept
on the ``ai_jobs`` row.

A job reserves its share of the quota when it is submitted, so a burst of jobs cannot run past
the quota, and counts as a call in progress (AI_MAX_CONCURRENT) until it ends. The reservation
holds for QUEUE_WAIT while the job waits; a job that starts later reserves again.
"""
import logging
from datetime import timedelta

import sqlalchemy as sa
from redis.exceptions import RedisError

from saas.ai.models import FAILED, QUEUED, RUNNING, SUCCEEDED, AiJob
from saas.ai.service import (
    CHAT_JOB,
    call_tokens,
    complete,
    complete_reserved,
    job_reservation,
    longest_run,
    resolve_max_tokens,
    resolve_model,
)
from saas.core.database import atomic, discard, transaction
from saas.core.errors import DomainError, Forbidden, envelope, envelope_of
from saas.core.queue import DEFAULT, enqueue, job_app_context, job_id
from saas.core.time import utcnow
from saas.extensions import db
from saas.usage.service import extend, release, reserve
from saas.orgs.models import Organization
from saas.users.models import User
from saas.webhooks import events as webhook_events

log = logging.getLogger(__name__)

# How long a queued job's reservation holds before it is given back (a worker down for longer).
QUEUE_WAIT = timedelta(hours=1)


class JobOwnerDisabled(Forbidden):
    message = "This account is disabled."


class OrganizationGone(Forbidden):
    message = "The organization this job was for was deleted."


def submit_job(org, user, *, messages, model=None, max_tokens=None, request_id=None):
    """Reserve the job's quota, store it and queue it for the worker; refused at once (429) over
    the quota or past AI_MAX_CONCURRENT calls and jobs in progress."""
    model, max_tokens = resolve_model(model), resolve_max_tokens(max_tokens)
    reservation = reserve(
        org, user, model=model, tokens=call_tokens(messages, max_tokens), hold_for=QUEUE_WAIT + longest_run(),
        request_id=request_id,
    )
    stored_id = _store_job(org, user, model, max_tokens, messages, request_id, reservation)
    try:
        # RQ's default 180 s limit could kill a slow but healthy call and lose its usage.
        enqueue(
            run_chat_job, stored_id, queue=DEFAULT, backoff=None, job_id=job_id(CHAT_JOB, stored_id),
            job_timeout=int(longest_run().total_seconds()),
        )
    except RedisError:
        _forget_job(stored_id)
        release(reservation)
        raise
    return db.session.get(AiJob, stored_id)


@atomic
def _store_job(org, user, model, max_tokens, messages, request_id, reservation):
    job = AiJob(
        user_id=user.id, org_id=org.id, model=model, max_tokens=max_tokens, messages=messages, request_id=request_id,
        usage_record_id=reservation.record_id,
    )
    db.session.add(job)
    db.session.flush()
    return job.id


@atomic
def _forget_job(stored_id):
    db.session.execute(sa.delete(AiJob).where(AiJob.id == stored_id))


@job_app_context
def run_chat_job(stored_id):
    """Run a queued chat job once and store its result, or its error as the API would answer it."""
    if not _claim(stored_id):
        log.info("chat job %s is gone or not queued; nothing to run", stored_id)
        return None
    job = db.session.get(AiJob, stored_id)
    user = db.session.get(User, job.user_id)
    org = db.session.get(Organization, job.org_id) if job.org_id is not None else user.personal_org
    reservation = job_reservation(job)
    try:
        if not user.is_active:
            if reservation is not None:
                release(reservation)
            raise JobOwnerDisabled()
        if reservation is not None and extend(reservation, longest_run()):
            result = complete_reserved(reservation, job.messages, max_tokens=job.max_tokens)
        else:  # waited past QUEUE_WAIT (its reservation was given back), or older than reservations
            if org is None:
                raise OrganizationGone()
            result = complete(
                org, user, job.messages, model=job.model, max_tokens=job.max_tokens, request_id=job.request_id
            )
    except DomainError as error:  # quota, provider: the answer the API would have given
        _finish(stored_id, FAILED, error=envelope_of(error))
        return None
    except Exception:
        log.exception("chat job %s failed", stored_id)
        _finish(stored_id, FAILED, error=envelope(500, "The job failed unexpectedly."))
        raise
    _finish(stored_id, SUCCEEDED, result=result)
    return stored_id


@atomic
def _claim(stored_id):
    """Whether this run claimed the queued job (it is now running)."""
    return bool(db.session.execute(
        sa.update(AiJob).where(AiJob.id == stored_id, AiJob.status == QUEUED).values(status=RUNNING, started_at=utcnow())
    ).rowcount)


def _finish(stored_id, status, *, result=None, error=None):
    discard()  # whatever the failed call left in the session
    with transaction():
        db.session.execute(
            sa.update(AiJob).where(AiJob.id == stored_id)
            .values(status=status, result=result, error=error, finished_at=utcnow())
        )
        webhook_events.ai_job_finished(db.session.get(AiJob, stored_id), status=status, result=result, error=error)
