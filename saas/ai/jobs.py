"""Chat jobs: queued on ``default`` by ``submit_job``, run by the worker; their outcome is kept
on the ``ai_jobs`` row."""
import logging

import sqlalchemy as sa
from redis.exceptions import RedisError

from saas.ai.models import FAILED, QUEUED, RUNNING, SUCCEEDED, AiJob
from saas.ai.service import (
    CHAT_JOB,
    complete,
    estimate_prompt_tokens,
    longest_run,
    resolve_max_tokens,
    resolve_model,
)
from saas.core.errors import DomainError, Forbidden, envelope, envelope_of
from saas.core.queue import DEFAULT, enqueue, job_app_context, job_id
from saas.core.time import utcnow
from saas.extensions import db
from saas.usage.service import check_quota
from saas.users.models import User

log = logging.getLogger(__name__)


class AccountDisabled(Forbidden):
    message = "This account is disabled."


def submit_job(user, *, messages, model=None, max_tokens=None, request_id=None):
    """Store a chat job and queue it for the worker; refused at once if over quota."""
    model, max_tokens = resolve_model(model), resolve_max_tokens(max_tokens)
    check_quota(user, estimate_prompt_tokens(messages) + max_tokens)
    job = AiJob(user_id=user.id, model=model, max_tokens=max_tokens, messages=messages, request_id=request_id)
    db.session.add(job)
    db.session.commit()
    stored_id = job.id
    try:
        # RQ's default 180 s limit could kill a slow but healthy call and lose its usage.
        enqueue(
            run_chat_job, stored_id, queue=DEFAULT, backoff=None, job_id=job_id(CHAT_JOB, stored_id),
            job_timeout=int(longest_run().total_seconds()),
        )
    except RedisError:
        db.session.delete(job)
        db.session.commit()
        raise
    return db.session.get(AiJob, stored_id)


@job_app_context
def run_chat_job(stored_id):
    """Run a queued chat job once and store its result, or its error as the API would answer it."""
    claimed = db.session.execute(
        sa.update(AiJob).where(AiJob.id == stored_id, AiJob.status == QUEUED).values(status=RUNNING, started_at=utcnow())
    ).rowcount
    db.session.commit()
    if not claimed:
        log.info("chat job %s is gone or not queued; nothing to run", stored_id)
        return None
    job = db.session.get(AiJob, stored_id)
    user = db.session.get(User, job.user_id)
    try:
        if not user.is_active:
            raise AccountDisabled()
        result = complete(user, job.messages, model=job.model, max_tokens=job.max_tokens, request_id=job.request_id)
    except DomainError as error:  # quota, provider: the answer the API would have given
        _finish(stored_id, FAILED, error=envelope_of(error))
        return None
    except Exception:
        log.exception("chat job %s failed", stored_id)
        _finish(stored_id, FAILED, error=envelope(500, "The job failed unexpectedly."))
        raise
    _finish(stored_id, SUCCEEDED, result=result)
    return stored_id


def _finish(stored_id, status, *, result=None, error=None):
    db.session.rollback()
    db.session.execute(
        sa.update(AiJob).where(AiJob.id == stored_id).values(status=status, result=result, error=error, finished_at=utcnow())
    )
    db.session.commit()
