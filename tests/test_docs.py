"""The documentation pages: Swagger UI and ReDoc come from the app itself (vendored from npm) unless
SWAGGER_UI_URL / REDOC_URL name a CDN, and each page's Content-Security-Policy allows its own
origin and what its UI needs, nothing more. In a real browser: tests/test_docs_browser.py."""
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT, make_app

VENDORED = ROOT / "saas" / "web" / "docs_assets"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
DENY_ALL = "default-src 'none'; frame-ancestors 'none'"
CDN = "https://cdn.example.net"


class Page(HTMLParser):
    """The URLs a page loads (scripts, stylesheets, icons) and its inline scripts' types."""

    def __init__(self, html):
        super().__init__()
        self.assets, self.inline_script_types = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src"):
                self.assets.append(attrs["src"])
            else:
                self.inline_script_types.append(attrs.get("type"))
        elif tag == "link" and attrs.get("href"):
            self.assets.append(attrs["href"])


def docs_client(**settings):
    return make_app(DATABASE_URL="sqlite://", REDIS_URL="", **settings).test_client()


def page(client, path):
    response = client.get(path)
    assert response.status_code == 200
    return Page(response.get_data(as_text=True))


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_a_docs_page_loads_only_the_apps_own_assets_and_each_is_served(path):
    client = docs_client()
    fetched = [url for url in page(client, path).assets if not url.startswith("data:")]
    assert any(url.endswith(".js") for url in fetched)
    for url in fetched:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/docs/assets/"), url
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype == CONTENT_TYPES[Path(parts.path).suffix], url
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert len(response.data) > 100, url


def test_swagger_ui_page_loads_swagger_ui_from_the_configured_cdn():
    client = docs_client(SWAGGER_UI_URL=f"{CDN}/npm/swagger-ui-dist@5.35.0/")
    assets = page(client, "/docs").assets
    assert f"{CDN}/npm/swagger-ui-dist@5.35.0/swagger-ui-bundle.js" in assets
    assert f"{CDN}/npm/swagger-ui-dist@5.35.0/swagger-ui.css" in assets
    policy = client.get("/docs").headers["Content-Security-Policy"]
    assert f"script-src 'self' {CDN};" in policy and f"style-src 'self' {CDN};" in policy
    assert CDN not in client.get("/redoc").headers["Content-Security-Policy"]


def test_redoc_page_loads_redoc_from_the_configured_cdn():
    client = docs_client(REDOC_URL=f"{CDN}/npm/redoc@2.5.4/bundles/redoc.standalone.js")
    assert f"{CDN}/npm/redoc@2.5.4/bundles/redoc.standalone.js" in page(client, "/redoc").assets
    policy = client.get("/redoc").headers["Content-Security-Policy"]
    assert f"script-src 'self' {CDN};" in policy
    assert CDN not in client.get("/docs").headers["Content-Security-Policy"]


def test_each_docs_page_has_a_policy_of_its_own_origin_and_what_its_ui_needs():
    client = docs_client()
    common = "img-src 'self' data:; connect-src 'self'"
    tail = "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    assert client.get("/docs").headers["Content-Security-Policy"] == (
        f"default-src 'none'; script-src 'self'; style-src 'self'; {common}; {tail}"
    )
    assert client.get("/redoc").headers["Content-Security-Policy"] == (
        f"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; {common}; worker-src blob:; {tail}"
    )


def test_swagger_ui_page_runs_no_inline_script():
    # Its settings travel as JSON data, read by swagger-ui-init.js: the policy allows no inline code.
    assert page(docs_client(), "/docs").inline_script_types == ["application/json"]


@pytest.mark.parametrize("path", ["/docs/assets/swagger-ui/swagger-ui-bundle.js", "/openapi.json", "/docs/", "/redoc/x"])
def test_everything_but_the_two_pages_keeps_the_deny_all_policy(path):
    assert docs_client().get(path).headers["Content-Security-Policy"] == DENY_ALL


def test_vendored_files_are_the_ones_recorded_in_sources_md():
    recorded = {
        f"{directory}/{name}": digest
        for directory, table in re.findall(r"## (\S+)/\n\n(.*?)(?:\n\n|\Z)", (VENDORED / "SOURCES.md").read_text(), re.S)
        for name, digest in re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", table, re.M)
    }
    on_disk = {
        str(path.relative_to(VENDORED)): hashlib.sha256(path.read_bytes()).hexdigest()
        for directory in ("swagger-ui", "redoc")
        for path in sorted((VENDORED / directory).iterdir())
    }
    assert "swagger-ui/swagger-ui-bundle.js" in on_disk and "redoc/redoc.standalone.js" in on_disk
    assert on_disk == recorded
