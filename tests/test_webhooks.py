"""Outbound webhooks over real HTTP(S): endpoints managed through the API, events recorded by the
real actions, delivered by a real worker to a receiver the test runs, verified with the
`standardwebhooks` reference package; retries, disabling, rotation, the outbox, and the SSRF
defences (fake DNS for names that resolve inside, or change their answer)."""
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from rq import Queue
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from saas.core.database import transaction
from saas.core.secrets import decrypt
from saas.core.time import utcnow
from saas.extensions import db
from saas.mail.models import MailMessage
from saas.orgs.models import AuditEvent, Membership
from saas.users.models import User
from saas.webhooks import outbox
from saas.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from tests.billing_support import customer_user, subscribe
from tests.conftest import REDIS_URL
from tests.helpers import bearer, login, register, sign_up
from tests.org_support import Team
from tests.servers import process_output, run_rq_worker_burst, start_rq_worker, stop_process
from tests.webhook_support import LocalCA, Receiver, TricklingReceiver

ORGS = "/api/v1/orgs"
HOOK_HOST = "hooks.acme.test"
REBIND_HOST = "rebind.acme.test"


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory):
    return LocalCA(tmp_path_factory.mktemp("ca"), [HOOK_HOST, REBIND_HOST])


@pytest.fixture
def receiver(local_ca):
    """An HTTPS receiver whose certificate names hooks.acme.test (and rebind.acme.test)."""
    server = Receiver(tls=local_ca.server_context()).start()
    yield server
    server.stop()


@pytest.fixture
def plain_receiver():
    server = Receiver().start()
    yield server
    server.stop()


class Hooks:
    """An app on Redis and the worker that delivers, both with the same settings: loopback
    allowed (the receivers listen there), DNS from the fake server, the test CA trusted by the
    worker, retries a second apart."""

    def __init__(self, app_with, fake_dns, local_ca, **settings):
        self.settings = {
            "WEBHOOKS_ALLOW_LOOPBACK": "true", "DNS_NAMESERVERS": fake_dns.nameserver,
            "WEBHOOK_RETRY_SCHEDULE": "1,1,1", "WEBHOOK_TIMEOUT_SECONDS": "5", **settings,
        }
        self.client = app_with(**self.settings)
        self.worker_env = {**self.settings, "SSL_CERT_FILE": str(local_ca.ca_file)}
        fake_dns.add_a(HOOK_HOST, "127.0.0.1")
        self.token = sign_up(self.client, "owner@example.com")
        self.org_id = self.client.get(ORGS, headers=self.auth).get_json()[0]["id"]

    @property
    def auth(self):
        return bearer(self.token)

    def create(self, url, events=("webhook.test",), expect=201, **fields):
        response = self.client.post(f"{ORGS}/{self.org_id}/webhooks", json={"url": url, "events": list(events), **fields},
                                    headers=self.auth)
        assert response.status_code == expect, response.get_json()
        return response.get_json()

    def path(self, endpoint, suffix=""):
        return f"{ORGS}/{self.org_id}/webhooks/{endpoint['id']}{suffix}"

    def test_event(self, endpoint):
        response = self.client.post(self.path(endpoint, "/test"), headers=self.auth)
        assert response.status_code == 202, response.get_json()
        return response.get_json()

    def deliveries(self, endpoint):
        response = self.client.get(self.path(endpoint, "/deliveries"), headers=self.auth)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def endpoint(self, endpoint):
        return self.client.get(self.path(endpoint), headers=self.auth).get_json()

    def run_worker(self):
        """A worker until the queues are empty (retries scheduled for later stay scheduled)."""
        result = run_rq_worker_burst(**self.worker_env)
        assert result.returncode == 0, result.stderr[-3000:]
        self.worker_output = result.stdout + result.stderr
        db.session.remove()  # read what the worker wrote

    def start_worker(self, **extra):
        return start_rq_worker(**self.worker_env, **extra)


@pytest.fixture
def hooks(app_with, fake_dns, local_ca):
    return Hooks(app_with, fake_dns, local_ca)


def verified(received, secret):
    """The payload, if the reference package accepts the request's signature with ``secret``."""
    return Webhook(secret).verify(received.body, received.headers)


def _audit_actions(org_id):
    return db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.org_id == org_id).order_by(AuditEvent.id)).all()


# -- managing endpoints ---------------------------------------------------------------------------


def test_an_admin_adds_an_endpoint_whose_secret_is_shown_once_and_stored_encrypted(hooks):
    created = hooks.create(hooks_url := f"https://{HOOK_HOST}/in", events=["member.added", "ai.job.completed"],
                           description="CRM sync")
    assert created["url"] == hooks_url and created["enabled"] is True and created["description"] == "CRM sync"
    assert created["events"] == ["ai.job.completed", "member.added"]
    assert created["secret"].startswith("whsec_") and created["created_at"]
    listed = hooks.client.get(f"{ORGS}/{hooks.org_id}/webhooks", headers=hooks.auth).get_json()
    assert [endpoint["id"] for endpoint in listed] == [created["id"]]
    assert "secret" not in listed[0] and "secret" not in hooks.endpoint(created)
    stored = db.session.get(WebhookEndpoint, created["id"])
    assert created["secret"] not in stored.secret_encrypted
    assert _audit_actions(hooks.org_id) == ["webhook.created"]


def test_members_cannot_manage_webhooks_and_other_organizations_see_none(hooks):
    endpoint = hooks.create(f"https://{HOOK_HOST}/in")
    team = hooks.client.post(ORGS, json={"name": "Acme"}, headers=hooks.auth).get_json()
    register(hooks.client, "member@example.com")
    member = login(hooks.client, "member@example.com")["access_token"]
    # a member of the team (added directly: invitations are tested elsewhere)
    member_id = db.session.scalar(sa.select(User.id).where(User.email == "member@example.com"))
    db.session.add(Membership(org_id=team["id"], user_id=member_id, role="member"))
    db.session.commit()
    assert hooks.client.get(f"{ORGS}/{team['id']}/webhooks", headers=bearer(member)).status_code == 403
    # the owner's personal organization is not theirs: its endpoint is a 404 for them
    assert hooks.client.get(hooks.path(endpoint), headers=bearer(member)).status_code == 404
    assert hooks.client.get(f"{ORGS}/{team['id']}/webhooks/{endpoint['id']}", headers=hooks.auth).status_code == 404


@pytest.mark.parametrize("url", [
    "https://10.0.0.7/hook", "https://172.16.3.4/hook", "https://192.168.1.1/hook", "https://169.254.169.254/latest",
    "https://100.100.100.200/", "https://[fd00:ec2::254]/", "https://[fe80::1]/", "https://[::ffff:10.0.0.1]/",
    "https://224.0.0.1/", "https://0.0.0.0/", "https://127.0.0.1/hook", "https://[::1]/hook", "https://localhost/hook",
    "http://hooks.example.com/hook", "https://2130706433/", "https://user:pass@hooks.example.com/", "ftp://example.com/",
    "not a url",
])
def test_urls_that_point_inside_are_refused_at_creation(app_with, url):
    client = app_with()  # production's rules: https only, no loopback
    token = sign_up(client, "owner@example.com")
    org_id = client.get(ORGS, headers=bearer(token)).get_json()[0]["id"]
    response = client.post(f"{ORGS}/{org_id}/webhooks", json={"url": url, "events": ["member.added"]}, headers=bearer(token))
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"]["json"]["url"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


def test_a_change_of_url_is_checked_again_and_unknown_event_types_are_refused(hooks):
    endpoint = hooks.create(f"https://{HOOK_HOST}/in")
    refused = hooks.client.patch(hooks.path(endpoint), json={"url": "https://10.1.2.3/"}, headers=hooks.auth)
    assert refused.status_code == 422 and refused.get_json()["errors"]["json"]["url"]
    unknown = hooks.client.patch(hooks.path(endpoint), json={"events": ["member.exploded"]}, headers=hooks.auth)
    assert unknown.status_code == 422
    changed = hooks.client.patch(hooks.path(endpoint), json={"events": ["member.removed"], "enabled": False},
                                 headers=hooks.auth).get_json()
    assert (changed["events"], changed["enabled"], changed["disabled_reason"]) == (["member.removed"], False, "disabled")
    assert hooks.client.post(hooks.path(endpoint, "/test"), headers=hooks.auth).status_code == 409
    assert hooks.client.delete(hooks.path(endpoint), headers=hooks.auth).status_code == 204
    assert hooks.client.get(hooks.path(endpoint), headers=hooks.auth).status_code == 404
    assert _audit_actions(hooks.org_id) == ["webhook.created", "webhook.updated", "webhook.deleted"]


def test_the_event_types_are_listed_with_an_example_payload_each(hooks):
    listed = hooks.client.get("/api/v1/webhooks/event-types", headers=hooks.auth).get_json()
    types = {item["type"] for item in listed}
    assert {"ai.job.completed", "ai.job.failed", "subscription.updated", "member.added", "member.removed",
            "member.role_changed", "invitation.accepted", "usage.quota_exceeded", "webhook.test"} <= types
    for item in listed:
        assert item["description"] and item["example"]["type"] == item["type"] and "org_id" in item["example"]["data"]
    documented = hooks.client.get("/openapi.json").get_json()["paths"]["/api/v1/webhooks/event-types"]["get"]
    assert documented["responses"]["200"]["content"]["application/json"]["example"] == listed


# -- delivering ------------------------------------------------------------------------------------


def test_a_delivery_is_signed_per_standard_webhooks_and_sent_to_the_checked_address_over_tls(hooks, receiver):
    endpoint = hooks.create(receiver.url(HOOK_HOST))
    queued = hooks.test_event(endpoint)
    assert queued["status"] == "pending" and queued["event_type"] == "webhook.test"

    hooks.run_worker()

    [received] = receiver.wait_for(1)
    payload = verified(received, endpoint["secret"])
    assert payload["type"] == "webhook.test" and payload["data"]["endpoint_id"] == endpoint["id"]
    assert payload["data"]["org_id"] == hooks.org_id and payload["timestamp"].endswith("Z")
    assert received.headers["webhook-id"] == queued["event_id"]
    assert received.headers["host"] == f"{HOOK_HOST}:{receiver.port}"  # the name, though connected by address
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"].startswith("saas-Webhooks/")
    assert received.path == "/hooks/saas"
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB").verify(received.body, received.headers)
    [delivery] = hooks.deliveries(endpoint)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 1, 200), \
        hooks.worker_output[-5000:]
    assert delivery["completed_at"] and delivery["next_attempt_at"] is None


def test_a_certificate_for_another_name_is_refused(hooks, receiver, fake_dns):
    fake_dns.add_a("other.acme.test", "127.0.0.1")  # the receiver's certificate does not name it
    endpoint = hooks.create(receiver.url("other.acme.test"))
    hooks.test_event(endpoint)
    hooks.run_worker()
    [delivery] = hooks.deliveries(endpoint)
    assert delivery["status"] == "retrying" and "certificate" in delivery["last_error"]
    assert receiver.requests == []


def test_a_failing_receiver_is_retried_until_it_succeeds_with_the_same_webhook_id(hooks, receiver):
    receiver.answer(500, (503, b"maintenance", {}))
    endpoint = hooks.create(receiver.url(HOOK_HOST))
    queued = hooks.test_event(endpoint)
    worker = hooks.start_worker()
    try:
        requests = receiver.wait_for(3)
    finally:
        stop_process(worker)
    assert {request.headers["webhook-id"] for request in requests} == {queued["event_id"]}
    assert len({request.body for request in requests}) == 1  # byte for byte the same
    for request in requests:
        assert verified(request, endpoint["secret"])["type"] == "webhook.test"
    db.session.remove()
    [delivery] = hooks.deliveries(endpoint)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("succeeded", 3, 200), \
        process_output(worker)[-3000:]
    assert db.session.get(WebhookEndpoint, endpoint["id"]).failing_since is None


def test_a_failed_delivery_can_be_retried_by_hand_and_keeps_its_webhook_id(hooks, receiver):
    receiver.answer((500, b"x" * 10_000, {}))
    endpoint = hooks.create(receiver.url(HOOK_HOST))
    queued = hooks.test_event(endpoint)
    hooks.run_worker()
    [delivery] = hooks.deliveries(endpoint)
    assert (delivery["status"], delivery["last_status_code"]) == ("retrying", 500)
    assert delivery["last_error"].startswith("HTTP 500: xxx") and len(delivery["last_error"]) <= 600

    retried = hooks.client.post(hooks.path(endpoint, f"/deliveries/{delivery['id']}/retry"), headers=hooks.auth)
    assert retried.status_code == 202, retried.get_json()
    hooks.run_worker()

    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == queued["event_id"]
    [delivery] = hooks.deliveries(endpoint)
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 2)
    missing = hooks.client.post(hooks.path(endpoint, "/deliveries/999999/retry"), headers=hooks.auth)
    assert missing.status_code == 404


def test_deliveries_are_listed_newest_first_with_pagination(hooks, receiver):
    endpoint = hooks.create(receiver.url(HOOK_HOST))
    sent = [hooks.test_event(endpoint)["id"] for _ in range(3)]
    response = hooks.client.get(hooks.path(endpoint, "/deliveries?page_size=2"), headers=hooks.auth)
    assert [delivery["id"] for delivery in response.get_json()] == sent[::-1][:2]
    assert json.loads(response.headers["X-Pagination"])["total"] == 3


def test_redirects_are_not_followed(hooks, receiver, plain_receiver):
    receiver.answer((307, b"", {"Location": plain_receiver.url()}))
    endpoint = hooks.create(receiver.url(HOOK_HOST))
    hooks.test_event(endpoint)
    hooks.run_worker()
    [delivery] = hooks.deliveries(endpoint)
    assert (delivery["status"], delivery["last_status_code"]) == ("retrying", 307)
    assert "redirects are not followed" in delivery["last_error"]
    assert plain_receiver.requests == []


def test_a_410_disables_the_endpoint_at_once_and_mails_the_owners(hooks, receiver):
    receiver.answer(410)
    endpoint = hooks.create(receiver.url(HOOK_HOST))
    hooks.test_event(endpoint)
    hooks.run_worker()

    after = hooks.endpoint(endpoint)
    assert (after["enabled"], after["disabled_reason"]) == (False, "gone")
    [delivery] = hooks.deliveries(endpoint)
    assert (delivery["status"], delivery["last_status_code"]) == ("failed", 410)
    assert "webhook.disabled" in _audit_actions(hooks.org_id)
    [mail] = db.session.scalars(sa.select(MailMessage).where(MailMessage.template == "webhook_disabled")).all()
    assert mail.to_address == "owner@example.com" and mail.context["reason"] == "gone"
    assert hooks.client.post(hooks.path(endpoint, "/test"), headers=hooks.auth).status_code == 409
    enabled = hooks.client.patch(hooks.path(endpoint), json={"enabled": True}, headers=hooks.auth).get_json()
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)


def test_an_endpoint_failing_for_the_disable_period_is_disabled(app_with, fake_dns, local_ca, receiver):
    hooks = Hooks(app_with, fake_dns, local_ca, WEBHOOK_RETRY_SCHEDULE="600")  # no retry comes due meanwhile
    receiver.default = (500, b"down", {})
    endpoint = hooks.create(receiver.url(HOOK_HOST))
    hooks.test_event(endpoint)
    hooks.run_worker()
    assert hooks.endpoint(endpoint)["enabled"] is True  # one failure is no reason
    db.session.execute(sa.update(WebhookEndpoint).values(failing_since=utcnow() - timedelta(hours=72, minutes=1)))
    db.session.commit()
    hooks.test_event(endpoint)
    hooks.run_worker()
    after = hooks.endpoint(endpoint)
    assert (after["enabled"], after["disabled_reason"]) == (False, "failing")
    latest, first = hooks.deliveries(endpoint)
    assert (latest["status"], first["status"]) == ("failed", "retrying")  # the first's retry will find it disabled
    [mail] = db.session.scalars(sa.select(MailMessage).where(MailMessage.template == "webhook_disabled")).all()
    assert mail.context["reason"] == "failing" and "HTTP 500" in mail.context["last_error"]


def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(hooks, receiver):
    endpoint = hooks.create(receiver.url(HOOK_HOST))
    rotated = hooks.client.post(hooks.path(endpoint, "/rotate-secret"), headers=hooks.auth)
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_secret = rotated.get_json()["secret"]
    assert new_secret != endpoint["secret"]
    hooks.test_event(endpoint)
    hooks.run_worker()
    [during] = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verified(during, new_secret) == verified(during, endpoint["secret"])

    db.session.execute(sa.update(WebhookEndpoint).values(previous_secret_expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    hooks.test_event(endpoint)
    hooks.run_worker()
    after = receiver.wait_for(2)[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert verified(after, new_secret)["type"] == "webhook.test"
    with pytest.raises(WebhookVerificationError):
        verified(after, endpoint["secret"])
    assert "webhook.secret_rotated" in _audit_actions(hooks.org_id)


# -- SSRF at delivery ------------------------------------------------------------------------------


def test_a_host_name_that_resolves_to_a_private_address_is_refused_at_delivery(hooks, receiver, fake_dns):
    fake_dns.add_a("inside.acme.test", "10.0.0.7")
    fake_dns.add_a("mixed.acme.test", "127.0.0.1")  # allowed here (loopback), but it also has a private one
    fake_dns.add_aaaa("mixed.acme.test", "fd00::7")
    for host in ("inside.acme.test", "mixed.acme.test"):
        endpoint = hooks.create(receiver.url(host))  # a name: nothing to refuse before it is resolved
        hooks.test_event(endpoint)
    hooks.run_worker()
    errors = [db.session.scalar(sa.select(WebhookDelivery.last_error).where(WebhookDelivery.endpoint_id == endpoint_id))
              for endpoint_id in db.session.scalars(sa.select(WebhookEndpoint.id).order_by(WebhookEndpoint.id))]
    # Why, but not the address: a customer must not map our internal names through last_error.
    assert "refused" in errors[0] and "private or reserved" in errors[0] and "10.0.0.7" not in errors[0]
    assert "refused" in errors[1] and "private or reserved" in errors[1] and "fd00::7" not in errors[1]
    assert receiver.requests == []


def test_dns_rebinding_cannot_swap_the_address_between_the_check_and_the_connection(hooks, receiver, fake_dns):
    # The first answer is the receiver's (allowed here), every later one a private address: a
    # client that resolved again to connect would go there.
    fake_dns.rebind(REBIND_HOST, "127.0.0.1", "10.0.0.7")
    endpoint = hooks.create(receiver.url(REBIND_HOST))
    hooks.test_event(endpoint)
    hooks.run_worker()
    [received] = receiver.wait_for(1)
    assert received.headers["host"] == f"{REBIND_HOST}:{receiver.port}"
    assert len(fake_dns.queries_for(REBIND_HOST, "A")) == 1  # resolved once, connected to that answer

    hooks.test_event(endpoint)  # the next delivery gets the private answer, and refuses it
    hooks.run_worker()
    latest = hooks.deliveries(endpoint)[0]
    assert latest["status"] == "retrying" and "private or reserved" in latest["last_error"]
    assert len(receiver.requests) == 1


def test_a_receiver_that_never_finishes_answering_holds_its_job_only_for_the_timeout(app_with, fake_dns, local_ca,
                                                                                  receiver):
    hooks = Hooks(app_with, fake_dns, local_ca, WEBHOOK_TIMEOUT_SECONDS="1")
    trickling = TricklingReceiver().start()
    try:
        slow = hooks.create(trickling.url())
        fast = hooks.create(receiver.url(HOOK_HOST))
        hooks.test_event(slow)
        hooks.test_event(fast)
        hooks.run_worker()  # one worker: the slow delivery ends at its timeout, then the other goes
    finally:
        trickling.stop()
    assert trickling.connections == 1
    [stalled] = hooks.deliveries(slow)
    assert stalled["status"] == "retrying" and "no answer within 1 s" in stalled["last_error"]
    assert [delivery["status"] for delivery in hooks.deliveries(fast)] == ["succeeded"]


# -- the outbox ------------------------------------------------------------------------------------


def test_a_rolled_back_change_records_and_queues_nothing(hooks, redis_client):
    endpoint = hooks.create(f"https://{HOOK_HOST}/in", events=["member.added"])
    with pytest.raises(RuntimeError):
        with transaction():
            outbox.record(hooks.org_id, "member.added", {"user_id": 1, "email": "a@example.com", "role": "member"})
            raise RuntimeError("the change failed")
    # a module that commits by hand: its rollback drops what it recorded, queued or not
    outbox.record(hooks.org_id, "member.added", {"user_id": 1, "email": "a@example.com", "role": "member"})
    db.session.rollback()
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEvent)) == 0
    assert Queue("low", connection=redis_client).count == 0
    # and a committed one is queued by its commit
    outbox.record(hooks.org_id, "member.added", {"user_id": 1, "email": "a@example.com", "role": "member"})
    assert Queue("low", connection=redis_client).count == 0
    db.session.commit()
    assert Queue("low", connection=redis_client).count == 1
    assert endpoint["id"] == db.session.scalar(sa.select(WebhookDelivery.endpoint_id))


def test_an_event_recorded_while_redis_is_down_is_delivered_by_the_sweep(app_with, fake_dns, local_ca, receiver):
    down = Hooks(app_with, fake_dns, local_ca, REDIS_URL="redis://127.0.0.1:1/0")
    endpoint = down.create(receiver.url(HOOK_HOST))
    queued = down.test_event(endpoint)  # recorded; its job could not be queued
    assert queued["status"] == "pending"
    db.session.execute(sa.update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=30)))
    db.session.commit()

    # Redis is back: the worker's sweep finds the delivery and queues it.
    worker = start_rq_worker(**{**down.worker_env, "REDIS_URL": REDIS_URL}, SWEEP_INTERVAL_SECONDS="5")
    try:
        [received] = receiver.wait_for(1, timeout=60)
    finally:
        stop_process(worker)
    assert received.headers["webhook-id"] == queued["event_id"]
    assert verified(received, endpoint["secret"])["type"] == "webhook.test"


# -- events fired by the real actions ----------------------------------------------------------------


def _events_received(receiver, secret, count):
    return [verified(request, secret) for request in receiver.wait_for(count)]


def test_an_ai_job_run_by_the_worker_reports_its_outcome(hooks, receiver, fake_openai):
    endpoint = hooks.create(receiver.url(HOOK_HOST), events=["ai.job.completed", "ai.job.failed"])
    job = hooks.client.post("/api/v1/ai/jobs", json={"messages": [{"role": "user", "content": "hi"}]},
                            headers=hooks.auth).get_json()
    hooks.run_worker()
    fake_openai.mode = "down"
    failing = hooks.client.post("/api/v1/ai/jobs", json={"messages": [{"role": "user", "content": "hi"}]},
                                headers=hooks.auth).get_json()
    hooks.run_worker()

    completed, failed = _events_received(receiver, endpoint["secret"], 2)
    assert completed["type"] == "ai.job.completed"
    assert completed["data"]["job_id"] == job["id"] and completed["data"]["status"] == "succeeded"
    finished = hooks.client.get(f"/api/v1/ai/jobs/{job['id']}", headers=hooks.auth).get_json()
    assert completed["data"]["usage"] == finished["result"]["usage"]
    assert "result" not in completed["data"] and fake_openai.reply not in json.dumps(completed)
    assert failed["type"] == "ai.job.failed" and failed["data"]["job_id"] == failing["id"]
    assert failed["data"]["error"]["code"] >= 500


def test_a_stripe_webhook_changing_the_subscription_reports_it(hooks, receiver, fake_stripe):
    user, token = customer_user(hooks.client, fake_stripe, "payer@example.com")
    org_id = hooks.client.get(ORGS, headers=bearer(token)).get_json()[0]["id"]
    created = hooks.client.post(f"{ORGS}/{org_id}/webhooks", headers=bearer(token), json={
        "url": receiver.url(HOOK_HOST), "events": ["subscription.updated"]}).get_json()
    subscribe(hooks.client, fake_stripe, user, price_id="price_pro")  # a signed Stripe event, applied by the worker
    hooks.run_worker()
    [event] = _events_received(receiver, created["secret"], 1)
    assert event["type"] == "subscription.updated"
    assert event["data"]["org_id"] == org_id
    assert (event["data"]["plan"], event["data"]["status"]) == ("pro", "active")
    assert event["data"]["subscription_id"].startswith("sub_")


def test_a_refused_call_over_the_quota_reports_it_once_a_month(app_with, fake_dns, local_ca, receiver):
    hooks = Hooks(app_with, fake_dns, local_ca, PLAN_QUOTAS="free:10")
    endpoint = hooks.create(receiver.url(HOOK_HOST), events=["usage.quota_exceeded"])
    for _ in range(2):
        refused = hooks.client.post("/api/v1/ai/chat", json={"messages": [{"role": "user", "content": "hi"}]},
                                    headers=hooks.auth)
        assert refused.status_code == 429
    hooks.run_worker()
    [event] = _events_received(receiver, endpoint["secret"], 1)
    assert event["type"] == "usage.quota_exceeded"
    assert (event["data"]["plan"], event["data"]["limit"]) == ("free", 10)
    assert len(receiver.requests) == 1


def test_members_joining_changing_role_and_leaving_are_reported(mailing, smtp, plain_receiver):
    client = mailing(WEBHOOKS_ALLOW_LOOPBACK="true")  # no Redis: each delivery runs after its response
    team = Team(client, smtp)
    owner = team.person("owner@example.com")
    org = team.org(owner)
    member_events = ["invitation.accepted", "member.added", "member.role_changed", "member.removed"]
    created = client.post(f"{ORGS}/{org['id']}/webhooks", json={"url": plain_receiver.url(), "events": member_events},
                          headers=bearer(owner)).get_json()
    team.join(owner, org["id"], "ada@example.com")
    ada = next(member for member in team.get(f"{ORGS}/{org['id']}/members", owner).get_json()
               if member["email"] == "ada@example.com")
    assert client.patch(f"{ORGS}/{org['id']}/members/{ada['user_id']}", json={"role": "admin"},
                        headers=bearer(owner)).status_code == 200
    assert client.delete(f"{ORGS}/{org['id']}/members/{ada['user_id']}", headers=bearer(owner)).status_code == 204

    accepted, added, role_changed, removed = _events_received(plain_receiver, created["secret"], 4)
    assert accepted["type"] == "invitation.accepted" and accepted["data"]["email"] == "ada@example.com"
    assert added["type"] == "member.added"
    assert added["data"] == {"org_id": org["id"], "user_id": ada["user_id"], "email": "ada@example.com", "role": "member"}
    assert role_changed["type"] == "member.role_changed"
    assert (role_changed["data"]["previous_role"], role_changed["data"]["role"]) == ("member", "admin")
    assert removed["type"] == "member.removed"
    assert removed["data"] == {"org_id": org["id"], "user_id": ada["user_id"], "role": "admin", "left": False}


def test_without_redis_a_job_run_after_the_response_delivers_its_event(app_with, fake_openai, plain_receiver):
    client = app_with(REDIS_URL="", WEBHOOKS_ALLOW_LOOPBACK="true")  # the embedded default's inline jobs
    token = sign_up(client, "solo@example.com")
    org_id = client.get(ORGS, headers=bearer(token)).get_json()[0]["id"]
    created = client.post(f"{ORGS}/{org_id}/webhooks", headers=bearer(token), json={
        "url": plain_receiver.url(), "events": ["ai.job.completed"]}).get_json()
    job = client.post("/api/v1/ai/jobs", json={"messages": [{"role": "user", "content": "hi"}]},
                      headers=bearer(token)).get_json()  # run after the response; its event after its commit
    [event] = _events_received(plain_receiver, created["secret"], 1)
    assert (event["type"], event["data"]["job_id"]) == ("ai.job.completed", job["id"])


def test_a_key_rotation_reencrypts_the_signing_secrets(app_with, fake_dns, local_ca):
    first_key, second_key = "k" * 40, "n" * 40
    hooks = Hooks(app_with, fake_dns, local_ca, MFA_ENCRYPTION_KEY=first_key)
    endpoint = hooks.create(f"https://{HOOK_HOST}/in")
    hooks.client.post(hooks.path(endpoint, "/rotate-secret"), headers=hooks.auth)  # two secrets stored now

    rotated = app_with(MFA_ENCRYPTION_KEY=f"{second_key},{first_key}")
    result = rotated.application.test_cli_runner().invoke(args=["users", "reencrypt-secrets"])
    assert result.exit_code == 0 and "re-encrypted 1 secrets" in result.output

    with app_with(MFA_ENCRYPTION_KEY=second_key).application.app_context():
        stored = db.session.get(WebhookEndpoint, endpoint["id"])
        assert decrypt(stored.previous_secret_encrypted) == endpoint["secret"]
        assert decrypt(stored.secret_encrypted).startswith("whsec_")
