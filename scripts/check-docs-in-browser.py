#!/usr/bin/env python3
"""Swagger UI and ReDoc in a real browser, with no network but the app: `make check-docs`.

Serves the app on the embedded default (SQLite in a throwaway directory, no Redis, inline jobs),
registers a user through the API, then drives Debian's headless Chromium with Playwright:

1. /docs: Authorize with the OAuth2 password form (email as username), then "Try it out" on
   GET /api/v1/users/me, which must answer 200 with the user's email;
2. /redoc: the document must render with its operations.

Any request the browser makes to another origin (a CDN) is refused and fails the check, as do a
script error and a Content-Security-Policy violation (but one, REDOC_LOGO below). Exits 0 when
everything passed; otherwise 1, with the reason and a screenshot under build/check-docs/.
"""
import json
import secrets
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from playwright.sync_api import Error as PlaywrightError, expect, sync_playwright  # noqa: E402
from werkzeug.serving import WSGIRequestHandler, make_server  # noqa: E402

from config import Config  # noqa: E402
from saas import create_app, init_migrations  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # Containers often give /dev/shm 64 MB, too little for Chromium's renderer: use /tmp.
    "--disable-dev-shm-usage",
    # No name resolves: even a request that escaped the routing below could reach no CDN.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
EMAIL = "docs.check@example.com"
PASSWORD = "a long passphrase for the docs check"
ME = "/api/v1/users/me"
ME_OPERATION_ID = "users_get_me"
SCREENSHOTS = ROOT / "build" / "check-docs"
# ReDoc 2 always shows Redocly's logo, from Redocly's CDN, at the foot of its menu, and hides it
# when it does not load. The page's policy blocks that request (as it should: no CDN), and Chrome
# logs the violation; it is the one violation allowed, and only on /redoc.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
TIMEOUT_MS = 30_000


class CheckFailed(Exception):
    pass


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


def serve_embedded_app(workdir):
    """The app on SQLite in ``workdir``, migrated, served on a free port; its base URL."""
    config = Config.from_env(
        {
            "APP_ENV": "development",
            "DATABASE_URL": f"sqlite:///{workdir / 'saas.db'}",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "LOG_LEVEL": "WARNING",
        }
    )
    app = create_app(config)
    init_migrations(app)
    with app.app_context():
        upgrade()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def register_user(base):
    request = urllib.request.Request(
        f"{base}/api/v1/auth/register",
        data=json.dumps({"email": EMAIL, "password": PASSWORD, "full_name": "Swagger Visitor"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        if response.status != 201:
            raise CheckFailed(f"registration answered {response.status}")


class Browser:
    """A Chromium page that refuses, and remembers, every request to another origin than ``base``
    and remembers every console error and script error."""

    def __init__(self, playwright, base, profile):
        self.base = base
        self.foreign, self.errors = [], []
        self.context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            timeout=TIMEOUT_MS,
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        self.context.route("**/*", self._route)
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"script error: {error}"))

    def _route(self, route):
        parts = urlsplit(route.request.url)
        if f"{parts.scheme}://{parts.netloc}" == self.base:
            route.continue_()
        else:
            self.foreign.append(route.request.url)
            route.abort("blockedbyclient")

    def assert_clean(self, page_name, blocked_by_policy=()):
        """No request left the origin, and the only errors are the policy blocking URLs of
        ``blocked_by_policy``; returns those URLs that it did block."""
        if self.foreign:
            raise CheckFailed(f"{page_name} asked another origin for {self.foreign}")
        blocked = {
            url for url in blocked_by_policy for error in self.errors
            if f"'{url}' violates the following Content Security Policy" in error
        }
        unexpected = [error for error in self.errors if not any(f"'{url}' violates" in error for url in blocked)]
        if unexpected:
            raise CheckFailed(f"{page_name} logged errors: {unexpected}")
        self.errors.clear()
        return blocked

    def close(self):
        self.context.close()


def check_swagger_ui(browser):
    page, base = browser.page, browser.base
    page.goto(f"{base}/docs")
    page.locator(".swagger-ui .auth-wrapper button.authorize").click()
    step("Swagger UI loaded; Authorize dialog open")

    oauth2 = page.locator(".dialog-ux .auth-container").filter(has_text="OAuth2PasswordBearer (OAuth2, password)")
    oauth2.locator("#oauth_username").fill(EMAIL)
    oauth2.locator("#oauth_password").fill(PASSWORD)
    with page.expect_response(lambda response: response.url == f"{base}/api/v1/auth/login") as login:
        oauth2.locator("button.authorize").click()
    if login.value.status != 200:
        raise CheckFailed(f"the OAuth2 login answered {login.value.status}: {login.value.text()}")
    expect(oauth2.locator("button", has_text="Logout")).to_be_visible()
    oauth2.locator("button.btn-done").click()
    step(f"logged in through the OAuth2 password form as {EMAIL} (POST /api/v1/auth/login: 200)")

    operation = page.locator(f".opblock-get:has(.opblock-summary-path[data-path='{ME}'])")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    with page.expect_response(lambda response: response.url == f"{base}{ME}") as me:
        operation.locator("button.execute").click()
    authorization = me.value.request.header_value("authorization") or ""
    if not authorization.startswith("Bearer "):
        raise CheckFailed(f"GET {ME} was sent without the bearer token (Authorization: {authorization!r})")
    answer = operation.locator(".live-responses-table tr.response")
    expect(answer.locator(".response-col_status")).to_have_text("200")
    expect(answer.locator(".response-col_description")).to_contain_text(f'"email": "{EMAIL}"')
    step(f'"Try it out" on GET {ME}: 200 with "email": "{EMAIL}" (sent with Authorization: Bearer)')
    browser.assert_clean("/docs")


def check_redoc(browser):
    page, base = browser.page, browser.base
    page.goto(f"{base}/redoc")
    expect(page.locator(".api-info h1")).to_contain_text("saas")
    # ReDoc names an operation's section after its operationId: tag/users/operation/users_get_me
    expect(page.locator(f"[data-section-id$='/operation/{ME_OPERATION_ID}']")).to_contain_text(ME)
    operations = page.locator("[data-section-id*='/operation/']").count()
    step(f"ReDoc rendered the document ({operations} operations; GET {ME} among them)")
    if browser.assert_clean("/redoc", blocked_by_policy=[REDOC_LOGO]):
        step(f"ReDoc's one outside request, Redocly's logo ({REDOC_LOGO}), was blocked by the page's policy")


def step(text):
    print(f"ok  {text}", flush=True)


def main():
    if not Path(CHROMIUM).exists():
        print(f"check-docs: {CHROMIUM} is missing: run `make check-docs` (installs Debian's chromium when root)")
        return 1
    with tempfile.TemporaryDirectory(prefix="check-docs-") as workdir:
        base = serve_embedded_app(Path(workdir))
        register_user(base)
        step(f"app serving the embedded default (SQLite, no Redis) on {base}; user {EMAIL} registered")
        with sync_playwright() as playwright:
            browser = Browser(playwright, base, Path(workdir) / "chromium-profile")
            current = "docs"
            try:
                check_swagger_ui(browser)
                current = "redoc"
                check_redoc(browser)
            except (CheckFailed, PlaywrightError, AssertionError) as failure:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                shot = SCREENSHOTS / f"{current}-failure.png"
                browser.page.screenshot(path=str(shot), full_page=True)
                print(f"FAIL {failure}\n     (screenshot: {shot}; console errors: {browser.errors};"
                      f" refused requests: {browser.foreign})")
                return 1
            finally:
                browser.close()
    step(f"no request left {base}; no other policy violation, no script error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
