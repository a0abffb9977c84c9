"""Arrangements of the social-login tests: an app whose providers are the fake OpenID Connect
provider and the fake GitHub, and a browser that goes through the flow as a person's would:
the app's test client (with its cookie jar) for the API, plain HTTP for the provider's pages."""
import time
from urllib.parse import parse_qs, urlsplit

import requests

API = "https://api.example.test"
FRONT_END = "https://app.example.test"
FRONT_END_CALLBACK = f"{FRONT_END}/oauth/callback"
OAUTH = f"{API}/api/v1/auth/oauth"
IDENTITIES = f"{API}/api/v1/users/me/identities"
OIDC_CLIENT = ("saas-oidc-client", "oidc-client-secret")
GITHUB_CLIENT = ("Iv1.saas-github", "github-client-secret")


def callback_url(provider):
    return f"{OAUTH}/{provider}/callback"


def social_settings(fake_oidc, fake_github, **overrides):
    """The app's settings for both fakes, with their clients registered at them."""
    fake_oidc.register_client(*OIDC_CLIENT, [callback_url("oidc")])
    fake_github.register_client(*GITHUB_CLIENT, [callback_url("github")])
    return {
        "OAUTH_PROVIDERS": "oidc,github",
        "OAUTH_OIDC_CLIENT_ID": OIDC_CLIENT[0], "OAUTH_OIDC_CLIENT_SECRET": OIDC_CLIENT[1],
        "OAUTH_OIDC_ISSUER": fake_oidc.issuer, "OAUTH_OIDC_DISPLAY_NAME": "Acme SSO",
        "OAUTH_GITHUB_CLIENT_ID": GITHUB_CLIENT[0], "OAUTH_GITHUB_CLIENT_SECRET": GITHUB_CLIENT[1],
        "OAUTH_GITHUB_BASE_URL": fake_github.base_url, "OAUTH_GITHUB_API_URL": fake_github.api_url,
        "PUBLIC_API_URL": API, "FRONTEND_URL": FRONT_END,
        **overrides,
    }


def query_of(url):
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def front_end_params(response):
    """The parameters a redirect to the front end's callback page carries."""
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(FRONT_END_CALLBACK + "?"), location
    return query_of(location)


class Browser:
    """One browser: its cookies live in ``client`` (a test client of the app)."""

    def __init__(self, client):
        self.client = client
        self.seen_urls = []  # every URL it was sent to

    def open(self, url, **kwargs):
        response = self.client.get(url, **kwargs)
        self.seen_urls.append(url)
        if "Location" in response.headers:
            self.seen_urls.append(response.headers["Location"])
        return response

    def start(self, provider="oidc", authorize_url=None):
        """Open the authorize URL: the app's redirect to the provider."""
        response = self.open(authorize_url or f"{OAUTH}/{provider}/authorize")
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    def at_provider(self, start):
        """Follow the app's redirect to the provider, which signs the person in at once: the
        provider's redirect back to the app's callback URL."""
        answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    def sign_in(self, provider="oidc", authorize_url=None):
        """The whole round trip: the app's last answer (its redirect to the front end, which may
        come at once, from the authorize URL)."""
        start = self.start(provider, authorize_url)
        if start.headers["Location"].startswith(FRONT_END_CALLBACK):
            return start
        return self.open(self.at_provider(start))

    def code(self, provider="oidc"):
        """A sign-in that must succeed: the one-time code the front end receives."""
        params = front_end_params(self.sign_in(provider))
        assert set(params) == {"code"}, params
        return params["code"]

    def exchange(self, code):
        return self.client.post(f"{OAUTH}/exchange", json={"code": code})

    def tokens(self, provider="oidc"):
        """Sign in and exchange the code: the token pair."""
        response = self.exchange(self.code(provider))
        assert response.status_code == 200, response.get_json()
        assert "access_token" in response.get_json(), response.get_json()
        return response.get_json()


def wait_for(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("not within the time allowed")
