"""Background chat jobs: queued by the API, run by a real `rq worker`, read back by their owner."""
import queue
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.utils import current_timestamp

from saas.ai.models import AiJob
from saas.extensions import db
from tests.ai_support import (
    CHAT,
    JOBS,
    USAGE,
    create_api_key,
    messages,
    usage_records,
)
from tests.conftest import ROOT, child_env, make_app
from tests.helpers import at_once, bearer, sign_up
from tests.servers import process_output, run_rq_worker_burst, stop_process, worker_command


def _submit(client, token, **fields):
    response = client.post(JOBS, json={"messages": messages("Summarise the news"), **fields}, headers=bearer(token))
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def _run_worker():
    result = run_rq_worker_burst()
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_job_is_queued_then_run_by_a_real_worker(client, tokens, fake_openai, redis_client):
    job = _submit(client, tokens["access_token"])
    assert job["status"] == "queued"
    assert job["result"] is None and job["error"] is None
    assert f"ai-chat-{job['id']}" in Queue("default", connection=redis_client).job_ids
    config = client.application.config
    longest_call = config["AI_TIMEOUT"] * (config["AI_MAX_RETRIES"] + 1) + 60
    assert Job.fetch(f"ai-chat-{job['id']}", connection=redis_client).timeout == longest_call
    assert fake_openai.completions() == []

    _run_worker()

    done = client.get(f"{JOBS}/{job['id']}", headers=bearer(tokens["access_token"])).get_json()
    assert done["status"] == "succeeded"
    assert done["started_at"] and done["finished_at"]
    assert done["result"]["content"] == fake_openai.reply
    assert done["result"]["usage"] == {"input_tokens": 3, "output_tokens": 10, "total_tokens": 13}
    assert done["error"] is None
    [record] = usage_records()
    assert (record.input_tokens, record.output_tokens) == (3, 10)


def test_a_job_survives_a_restart_of_the_app(database, fake_openai):
    before = make_app()
    with before.app_context():
        first = before.test_client()
        token = sign_up(first)
        key = create_api_key(first, token)["key"]
        job = _submit(first, key, max_tokens=4)
        db.session.remove()

    _run_worker()

    after = make_app()  # a new process would build exactly this
    with after.app_context():
        response = after.test_client().get(f"{JOBS}/{job['id']}", headers={"X-API-Key": key})
        db.session.remove()
    assert response.status_code == 200
    assert response.get_json()["status"] == "succeeded"
    assert response.get_json()["result"]["finish_reason"] == "length"


def test_only_the_owner_can_read_a_job(client, tokens):
    job = _submit(client, tokens["access_token"])
    intruder = sign_up(client, "intruder@example.com")
    assert client.get(f"{JOBS}/{job['id']}", headers=bearer(intruder)).status_code == 404
    for unknown in ("00000000-0000-0000-0000-000000000000", "not-a-job", "a%00b"):
        assert client.get(f"{JOBS}/{unknown}", headers=bearer(intruder)).status_code == 404
    assert client.get(f"{JOBS}/{job['id']}").status_code == 401


def test_a_provider_failure_is_kept_as_the_jobs_error(client, tokens, fake_openai):
    fake_openai.mode = "down"
    job = _submit(client, tokens["access_token"])
    _run_worker()

    failed = client.get(f"{JOBS}/{job['id']}", headers=bearer(tokens["access_token"])).get_json()
    assert failed["status"] == "failed"
    assert failed["result"] is None
    assert failed["error"]["code"] == 502 and failed["error"]["status"] == "Bad Gateway"
    assert usage_records() == []


def test_a_job_over_the_quota_is_refused_when_submitted(app_with, fake_openai):
    client = app_with(PLAN_QUOTAS="free:50")
    response = client.post(JOBS, json={"messages": messages()}, headers=bearer(sign_up(client)))
    assert response.status_code == 429
    assert response.get_json()["errors"]["quota"]["limit"] == 50


def test_without_redis_a_job_runs_after_the_response(app_with, fake_openai):
    client = app_with(REDIS_URL="")
    token = sign_up(client)
    response = client.post(JOBS, json={"messages": messages()}, headers=bearer(token))
    assert response.status_code == 202
    assert response.get_json()["status"] == "queued"  # answered before the model was called
    done = client.get(f"{JOBS}/{response.get_json()['id']}", headers=bearer(token)).get_json()
    assert done["status"] == "succeeded"


def _set_job_state(job_id, **columns):
    db.session.execute(sa.update(AiJob).where(AiJob.id == job_id).values(**columns))
    db.session.commit()


def test_a_job_whose_worker_died_is_reported_failed_once_it_cannot_be_running(client, tokens):
    job = _submit(client, tokens["access_token"])
    # What a worker killed mid-job leaves behind: claimed, never finished.
    _set_job_state(job["id"], status="running", started_at=datetime.now(timezone.utc) - timedelta(hours=1))

    read = client.get(f"{JOBS}/{job['id']}", headers=bearer(tokens["access_token"])).get_json()

    assert read["status"] == "failed"
    assert read["error"]["code"] == 504
    assert read["finished_at"] is not None


def test_a_job_running_within_its_time_is_left_running(client, tokens):
    job = _submit(client, tokens["access_token"])
    _set_job_state(job["id"], status="running", started_at=datetime.now(timezone.utc))

    read = client.get(f"{JOBS}/{job['id']}", headers=bearer(tokens["access_token"])).get_json()

    assert read["status"] == "running"
    assert read["error"] is None


def test_a_queued_job_that_redis_lost_is_reported_failed(client, tokens, redis_client):
    job = _submit(client, tokens["access_token"])
    Job.fetch(f"ai-chat-{job['id']}", connection=redis_client).delete()

    read = client.get(f"{JOBS}/{job['id']}", headers=bearer(tokens["access_token"])).get_json()

    assert read["status"] == "failed"
    assert "lost" in read["error"]["message"]
    usage = client.get(USAGE, headers=bearer(tokens["access_token"])).get_json()
    assert usage["reserved"] == 0  # what the lost job held went back to the quota


def test_a_queued_job_still_in_the_queue_stays_queued(client, tokens):
    job = _submit(client, tokens["access_token"])
    read = client.get(f"{JOBS}/{job['id']}", headers=bearer(tokens["access_token"])).get_json()
    assert read["status"] == "queued"


def _submit_status(client, token):
    return client.post(JOBS, json={"messages": messages()}, headers=bearer(token)).status_code


def test_a_burst_of_jobs_reserves_at_submit_and_cannot_pass_the_quota(app_with, fake_openai):
    # Each job reserves 108 tokens (an 8-token prompt estimate plus max_tokens 100): 3 fit in 330.
    client = app_with(PLAN_QUOTAS="free:330", AI_MAX_CONCURRENT="50")
    token = sign_up(client)
    statuses = [_submit_status(client, token) for _ in range(10)]
    assert statuses == [202, 202, 202] + [429] * 7
    usage = client.get(USAGE, headers=bearer(token)).get_json()
    assert (usage["used"], usage["reserved"]) == (0, 324)
    _run_worker()
    usage = client.get(USAGE, headers=bearer(token)).get_json()
    assert usage["reserved"] == 0 and 0 < usage["used"] <= 330
    assert len(fake_openai.completions()) == 3


def test_queued_and_running_ai_work_is_capped_per_user(app_with, fake_openai):
    client = app_with(AI_MAX_CONCURRENT="4")
    token, other = sign_up(client), sign_up(client, "other@example.com")
    statuses = [_submit_status(client, token) for _ in range(6)]
    assert statuses == [202] * 4 + [429] * 2
    refused = client.post(JOBS, json={"messages": messages()}, headers=bearer(token))
    assert refused.get_json()["errors"]["in_progress"]["limit"] == 4
    assert refused.headers["Retry-After"]
    assert _submit_status(client, other) == 202  # another user is not held up
    _run_worker()
    assert _submit_status(client, token) == 202  # the finished jobs freed their places


def test_the_cap_holds_for_a_users_jobs_for_several_organizations_at_once(app_with, fake_openai):
    """AI_MAX_CONCURRENT counts a user's work for every organization: jobs submitted at the same
    moment for a team (X-Org-Id) and for the personal organization cannot race past it."""
    client = app_with(AI_MAX_CONCURRENT="2")
    token = sign_up(client)
    team = client.post("/api/v1/orgs", json={"name": "Acme"}, headers=bearer(token)).get_json()["id"]
    acting_for = queue.SimpleQueue()
    for _ in range(4):
        acting_for.put({"X-Org-Id": str(team)})
        acting_for.put({})
    statuses = at_once(
        client.application, 8,
        lambda own: own.post(JOBS, json={"messages": messages()}, headers={**bearer(token), **acting_for.get()}).status_code,
    )
    assert sorted(statuses) == [202] * 2 + [429] * 6
    assert len([record for record in usage_records() if record.status == "reserved"]) == 2


def test_concurrent_chats_are_capped_per_user(app_with, fake_openai, database):
    fake_openai.mode, fake_openai.delay = "slow", 1.5
    client = app_with(AI_MAX_CONCURRENT="2", AI_TIMEOUT="5")
    token = sign_up(client)
    statuses = at_once(
        client.application, 4,
        lambda own: own.post(CHAT, json={"messages": messages()}, headers=bearer(token)).status_code,
    )
    assert sorted(statuses) == [200, 200, 429, 429]


def _eventually(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def _give_up_as_rq_does(job_id, redis_client):
    """What RQ does with a job whose worker stopped vouching for it (killed, or only stalled):
    out of the started registry, failed."""
    StartedJobRegistry("default", connection=redis_client).cleanup(current_timestamp() + 3600)


def _outrun_its_longest_run(job_id, redis_client):
    _set_job_state(job_id, started_at=datetime.now(timezone.utc) - timedelta(days=1))


@pytest.mark.parametrize("declare_lost", [_give_up_as_rq_does, _outrun_its_longest_run])
def test_a_job_declared_lost_while_it_still_runs_keeps_its_reservation_and_its_usage_is_billed(
    app_with, fake_openai, fake_stripe, redis_client, declare_lost
):
    client = app_with(AI_TIMEOUT="30")
    token = sign_up(client)
    job = _submit(client, token)
    fake_openai.answer_gate = answer = threading.Event()
    log_file = tempfile.TemporaryFile()
    worker = subprocess.Popen(
        worker_command("--burst"), cwd=ROOT, env=child_env(AI_TIMEOUT="30"), stdout=log_file, stderr=subprocess.STDOUT
    )
    worker.log_file = log_file
    try:
        _eventually(lambda: fake_openai.completions())  # the worker is waiting for the provider
        declare_lost(job["id"], redis_client)
        read = client.get(f"{JOBS}/{job['id']}", headers=bearer(token)).get_json()
        assert read["status"] == "failed"
        assert client.get(USAGE, headers=bearer(token)).get_json()["reserved"] > 0  # it may be running: it is
        answer.set()
        assert worker.wait(timeout=60) == 0, process_output(worker)
    finally:
        answer.set()
        stop_process(worker)

    usage = client.get(USAGE, headers=bearer(token)).get_json()
    assert (usage["used"], usage["reserved"]) == (13, 0)
    [record] = usage_records()
    assert (record.status, record.id) == ("settled", job_usage_record_id(job["id"]))
    assert [event["payload"]["value"] for event in fake_stripe.meter_events] == ["13"]
    assert client.get(f"{JOBS}/{job['id']}", headers=bearer(token)).get_json()["status"] == "succeeded"


def job_usage_record_id(job_id):
    db.session.expire_all()
    return db.session.get(AiJob, job_id).usage_record_id
