"""Swagger UI's and ReDoc's files, served by the app itself at /docs/assets/, and the
Content-Security-Policy of the two pages that run them.

The files are vendored from npm by scripts/vendor-docs-assets.sh (saas/web/docs_assets/SOURCES.md),
so the pages work offline and ask no CDN for code. ``SWAGGER_UI_URL`` / ``REDOC_URL`` move them to
a CDN; the page's policy then allows that origin too. flask-smorest renders the pages; Swagger
UI's is our own template (saas/web/templates/swagger_ui.html), which starts Swagger UI from a
file instead of an inline script, so neither policy allows inline scripts.
"""
from urllib.parse import urlsplit

import flask

ASSETS_PATH = "/docs/assets"

blp = flask.Blueprint("docs_assets", __name__, static_folder="docs_assets", static_url_path=ASSETS_PATH)


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def _policy(assets_url, styles=(), workers=()):
    code = " ".join(["'self'", *filter(None, [_origin(assets_url)])])
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {code}",
            " ".join(["style-src", code, *styles]),
            "img-src 'self' data:",  # the UIs' icons are data: SVGs
            "connect-src 'self'",  # the document, and the calls of "Try it out"
            *([" ".join(["worker-src", *workers])] if workers else []),
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


def docs_page_policies(config):
    """``{path: Content-Security-Policy}`` of the docs pages: their own origin, plus the origin of
    their assets when those were moved to a CDN, plus what each UI cannot do without."""
    return {
        config["OPENAPI_SWAGGER_UI_PATH"]: _policy(config["OPENAPI_SWAGGER_UI_URL"]),
        # ReDoc styles itself with <style> elements (styled-components) and runs its search index
        # in a worker made from a blob: URL.
        config["OPENAPI_REDOC_PATH"]: _policy(
            config["OPENAPI_REDOC_URL"], styles=["'unsafe-inline'"], workers=["blob:"]
        ),
    }
