"""Property-based fuzzing of every documented operation with schemathesis, in process over WSGI.

Each generated request is sent as a logged-in user (a fresh session per request) to the
suite's app on real PostgreSQL, Redis and the fake Stripe, and checked with schemathesis'
default checks: no 5xx, and status codes, headers and bodies as the OpenAPI document promises.
A failure here is a bug in the app or its docs: fix the app, or document what it answers.
"""
import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NOT_SET

from tests.conftest import WEBHOOK_SECRET, make_app
from tests.helpers import DEFAULT_EMAIL, bearer, login, register
from tests.fake_stripe import sign_payload

# Enough to reach every field's edge cases; the whole file stays within about two minutes.
EXAMPLES_PER_OPERATION = 30
WEBHOOK = "/api/v1/billing/webhook"

# What schemathesis expects of a schema-valid request by default...
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# ...and the documented answers a schema-valid request may still get, because the rule behind
# them is not one a JSON schema states: it depends on a secret, the user's state or the config.
RULES_BEYOND_THE_SCHEMA = {
    # A generated current_password is not the user's password; a new one may be too common.
    "PATCH /api/v1/users/me": ["400", "422"],
    # A generated password may be one of the most common, or contain the email.
    "POST /api/v1/auth/register": ["422"],
    "POST /api/v1/billing/webhook": ["400"],  # a signed object still need not be a Stripe event
    "POST /api/v1/billing/create-checkout-session": ["422"],  # STRIPE_PLANS, allowed origins
    "GET /api/v1/billing/customer-portal": ["422"],  # return_url on an allowed origin
    "GET /api/v1/billing/pro-feature": ["402"],  # the fuzzing user has no paid plan
    "POST /api/v1/ai/chat": ["422"],  # the model must be one of the configured ones
    "POST /api/v1/ai/jobs": ["422"],
    "POST /api/v1/api-keys": ["422"],  # expires_at must lie in the future
    # A generated token was not signed with SECRET_KEY.
    "POST /api/v1/auth/verify-email": ["400"],
    "POST /api/v1/auth/password-reset/confirm": ["400", "422"],
    "DELETE /api/v1/users/me": ["400"],  # a generated current_password is not the user's
    "POST /api/v1/invitations/accept": ["400"],
    "POST /api/v1/invitations/decline": ["400"],
    # A generated current_password is not the user's; the new address may be the user's own.
    "POST /api/v1/users/me/email": ["400", "422"],
    # A generated current_password is not the user's, nor a generated code the authenticator's.
    "POST /api/v1/auth/mfa/totp/setup": ["400"],
    "POST /api/v1/auth/mfa/totp/enable": ["400"],
    "POST /api/v1/auth/mfa/totp/disable": ["400"],
    "POST /api/v1/auth/mfa/recovery-codes": ["400"],
    "POST /api/v1/users/me/identities/confirm": ["400"],  # a generated link code was never issued
}
# An invalid request may also be refused for its size (MAX_CONTENT_LENGTH).
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {"negative_data_rejection": {"expected-statuses": REJECTED}},
        "operations": [
            {
                "include-name": name,
                "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED + statuses}},
            }
            for name, statuses in RULES_BEYOND_THE_SCHEMA.items()
        ],
    }
)

# The document is read at collection time from an app built like the suite's; the requests go
# to the suite's own `app` fixture. (schemathesis' lazy `from_fixture` loader fails under
# pytest 9: it sets `node._nodeid`, which pytest 9 no longer has.)
schema = schemathesis.openapi.from_wsgi("/openapi.json", make_app(), config=CONFIG)


class FreshLogin:
    """A new session of the fuzzing user for every case, so that logout and logout-all cases
    cannot end the session the next case needs. schemathesis applies it, and leaves it out of
    the cases that test a missing Authorization header."""

    client = None  # the test's client, set by the `fuzzing_user` fixture

    def get(self, case, context):
        if FreshLogin.client is None:
            return None  # schemathesis also asks while collecting, before any test runs
        return login(FreshLogin.client)["access_token"]

    def set(self, case, token, context):
        case.headers = {**(case.headers or {}), **bearer(token)}


schema.auth(refresh_interval=None)(FreshLogin)


@pytest.fixture
def fuzzing_user(client):
    register(client)
    # A superuser, so that the admin API's answers are fuzzed too, not only its 403.
    assert client.application.test_cli_runner().invoke(args=["users", "make-superuser", DEFAULT_EMAIL]).exit_code == 0
    FreshLogin.client = client
    yield
    FreshLogin.client = None


def signed_webhook_delivery(case):
    """The generated body signed as Stripe signs, so it gets past the signature check (which no
    generated signature could pass) to the event handling."""
    payload = "" if case.body is NOT_SET else json.dumps(case.body)
    return {"data": payload, "headers": {"Stripe-Signature": sign_payload(payload, WEBHOOK_SECRET)}}


# CI replays the same examples on every run so main stays deterministic; FUZZ_EXPLORE=1 draws new
# ones (run it locally to look for new failures, then fix the app, not the test).
EXPLORE = os.environ.get("FUZZ_EXPLORE") == "1"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=not EXPLORE,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_documented_contract(case, app, fuzzing_user):
    if case.path == WEBHOOK and case.meta.generation.mode.is_positive:
        case.call_and_validate(app=app, **signed_webhook_delivery(case))
    else:
        case.call_and_validate(app=app)
