"""Arrangements of the organization and account tests: people with verified addresses who
join teams through mailed invitations, and organizations that pay."""
import time

from tests.billing_support import deliver_ok
from tests.fake_stripe import make_event
from tests.helpers import bearer, login, register

ORGS = "/api/v1/orgs"
ACCEPT = "/api/v1/invitations/accept"


class Team:
    """An app without Redis whose mail goes to the test's SMTP server, and the people in it."""

    def __init__(self, client, smtp):
        self.client, self.smtp = client, smtp

    def person(self, email, verify=True):
        """Register ``email`` (verified unless told otherwise); their access token."""
        register(self.client, email, full_name=email.split("@")[0].title())
        if verify:
            message = self.mailed(email, invitation=False)
            assert self.client.post("/api/v1/auth/verify-email", json={"token": message.token}).status_code == 204
        return login(self.client, email)["access_token"]

    def mailed(self, email, invitation, timeout=10):
        """The newest invitation (or other message) mailed to ``email``, once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [message for message in self.smtp.to(email) if ("invited you" in message.subject) == invitation]
            if found:
                return found[-1]
            time.sleep(0.05)
        raise AssertionError(f"no {'invitation' if invitation else 'message'} to {email} in {timeout} s")

    def org(self, token, name="Acme"):
        response = self.client.post(ORGS, json={"name": name}, headers=bearer(token))
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def invite(self, token, org_id, email, role="member"):
        return self.client.post(f"{ORGS}/{org_id}/invitations", json={"email": email, "role": role}, headers=bearer(token))

    def invitation_token(self, email):
        """The token of the newest invitation mailed to ``email``."""
        return self.mailed(email, invitation=True).token

    def join(self, owner_token, org_id, email, role="member"):
        """Invite ``email``, who registers (verified) and accepts; their access token."""
        assert self.invite(owner_token, org_id, email, role).status_code == 201
        token = self.person(email)
        accepted = self.client.post(ACCEPT, json={"token": self.invitation_token(email)}, headers=bearer(token))
        assert accepted.status_code == 200, accepted.get_json()
        return token

    def get(self, path, token, headers=None, **kwargs):
        return self.client.get(path, headers={**bearer(token), **(headers or {})}, **kwargs)


def subscribe_org(team, owner_token, org_id, fake_stripe, price_id="price_team"):
    """Checkout for the organization, then the subscription Stripe creates, delivered."""
    response = team.client.post(f"{ORGS}/{org_id}/billing/checkout", json={"price_id": price_id}, headers=bearer(owner_token))
    assert response.status_code == 200, response.get_json()
    session = fake_stripe.checkout_sessions[response.get_json()["session_id"]]
    quantity = int(fake_stripe.requests_to("POST", "/v1/checkout/sessions")[-1].params["line_items"][0]["quantity"])
    subscription = fake_stripe.add_subscription(
        session["customer"], price_id, metadata=session["metadata"] | {}, quantity=quantity
    )
    deliver_ok(team.client, make_event("customer.subscription.created", subscription))
    return subscription
