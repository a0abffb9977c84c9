"""Response headers that suit a JSON API (OWASP Secure Headers for REST)."""
from flask import request

API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The docs pages load Swagger UI / ReDoc from a CDN, so they get a looser policy than JSON.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")
HSTS = "max-age=63072000; includeSubDomains"


def init_security_headers(app):
    production = app.config["APP_ENV"] == "production"

    @app.after_request
    def add_security_headers(response):
        for name, value in API_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.path.startswith(DOCS_PATHS):
            response.headers.setdefault("Content-Security-Policy", API_CSP)
        if request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        if production:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
