"""Chat jobs, run by ``rq worker``; their outcome is kept on the ``ai_jobs`` row."""
import logging
from datetime import datetime, timezone

import sqlalchemy as sa
from werkzeug.exceptions import Forbidden, HTTPException

from saas.ai.models import FAILED, QUEUED, RUNNING, SUCCEEDED, AiJob
from saas.ai.service import complete
from saas.api import error_payload
from saas.extensions import db
from saas.jobs import job_app_context
from saas.users.models import User

log = logging.getLogger(__name__)


class AccountDisabled(Forbidden):
    description = "This account is disabled."


@job_app_context
def run_chat_job(job_id):
    """Run a queued chat job once and store its result, or its error as the API would answer it."""
    now = datetime.now(timezone.utc)
    claimed = db.session.execute(
        sa.update(AiJob).where(AiJob.id == job_id, AiJob.status == QUEUED).values(status=RUNNING, started_at=now)
    ).rowcount
    db.session.commit()
    if not claimed:
        log.info("chat job %s is gone or not queued; nothing to run", job_id)
        return None
    job = db.session.get(AiJob, job_id)
    user = db.session.get(User, job.user_id)
    try:
        if not user.is_active:
            raise AccountDisabled()
        result = complete(
            user, job.messages, model=job.model, max_tokens=job.max_tokens, request_id=job.request_id
        )
    except HTTPException as error:  # quota, provider: the answer the API would have given
        data = getattr(error, "data", None) or {}
        message = data.get("message") or error.description
        _finish(job_id, FAILED, error=error_payload(error.code, message, data.get("errors")))
        return None
    except Exception:
        log.exception("chat job %s failed", job_id)
        _finish(job_id, FAILED, error=error_payload(500, "The job failed unexpectedly."))
        raise
    _finish(job_id, SUCCEEDED, result=result)
    return job_id


def _finish(job_id, status, *, result=None, error=None):
    db.session.rollback()
    db.session.execute(
        sa.update(AiJob)
        .where(AiJob.id == job_id)
        .values(status=status, result=result, error=error, finished_at=datetime.now(timezone.utc))
    )
    db.session.commit()
