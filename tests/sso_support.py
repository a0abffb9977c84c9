"""Arrangements of the enterprise SSO tests: organizations that claim and verify their domains
against the fake DNS server and connect a fake OpenID Connect provider, and people who sign in
through them in a browser (tests/social_support.py's)."""
from tests.helpers import bearer
from tests.social_support import API, Browser, front_end_params

SSO = f"{API}/api/v1/auth/sso"
SSO_CALLBACK = f"{SSO}/callback"
ORGS = f"{API}/api/v1/orgs"
ACME_CLIENT = ("acme-saas", "acme-client-secret")
GLOBEX_CLIENT = ("globex-saas", "globex-client-secret")


def claim(client, token, org_id, domain):
    return client.post(f"{ORGS}/{org_id}/domains", json={"domain": domain}, headers=bearer(token))


def verify(client, token, org_id, domain_id):
    return client.post(f"{ORGS}/{org_id}/domains/{domain_id}/verify", headers=bearer(token))


def verified_domain(client, token, org_id, domain, fake_dns):
    """Claim ``domain``, publish its TXT record at the fake DNS server and verify it: its id."""
    claimed = claim(client, token, org_id, domain)
    assert claimed.status_code == 201, claimed.get_json()
    fake_dns.add_txt(claimed.get_json()["txt_name"], claimed.get_json()["txt_value"])
    verified = verify(client, token, org_id, claimed.get_json()["id"])
    assert verified.status_code == 200 and verified.get_json()["verified"] is True, verified.get_json()
    return claimed.get_json()["id"]


def connect(client, token, org_id, idp, credentials=ACME_CLIENT, **fields):
    """PUT the organization's connection to ``idp`` (whose client is registered for the callback)."""
    idp.register_client(*credentials, [SSO_CALLBACK])
    body = {"issuer": idp.issuer, "client_id": credentials[0], "client_secret": credentials[1], **fields}
    return client.put(f"{ORGS}/{org_id}/sso", json=body, headers=bearer(token))


def connected(client, token, org_id, idp, credentials=ACME_CLIENT, **fields):
    response = connect(client, token, org_id, idp, credentials, **fields)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def start(client, email):
    return client.post(f"{SSO}/start", json={"email": email})


class SsoBrowser(Browser):
    """A browser signing in through an organization's provider."""

    def sso(self, email):
        """The whole round trip from the address: the app's last answer."""
        started = start(self.client, email)
        assert started.status_code == 200, started.get_json()
        return self.sign_in(authorize_url=started.get_json()["authorize_url"])

    def sso_code(self, email):
        params = front_end_params(self.sso(email))
        assert set(params) == {"code"}, params
        return params["code"]

    def sso_error(self, email):
        params = front_end_params(self.sso(email))
        assert set(params) == {"error"}, params
        return params["error"]

    def sso_tokens(self, email):
        response = self.exchange(self.sso_code(email))
        assert response.status_code == 200 and "access_token" in response.get_json(), response.get_json()
        return response.get_json()
