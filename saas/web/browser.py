"""What a flow through a browser needs from HTTP: a redirect, this API's public URLs, and the
cookie that binds a flow to the browser that began it.

Social login uses them (``saas/oauth/routes.py``), and so can any flow that sends the browser to
a third party and back (enterprise SSO): the flow stores only a hash of the cookie's value and
finds its state only with it, so a callback URL opened in another browser finds nothing.
"""
import re
import secrets

from flask import Response, current_app, request, url_for

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BROWSER_COOKIE = "saas_oauth"
_COOKIE_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def redirect_to(url):
    """A 302 to ``url`` and nothing else (no HTML page about it), never cached."""
    return Response(status=302, headers={"Location": url, **NO_STORE})


def public_url(endpoint, **values):
    """An absolute URL of this API: on PUBLIC_API_URL, or on the request's scheme and host (as
    PROXY_FIX_HOPS lets the proxy set them). A provider must have it registered exactly."""
    base = current_app.config["PUBLIC_API_URL"]
    return base + url_for(endpoint, **values) if base else url_for(endpoint, _external=True, **values)


def _secure():
    return current_app.config["APP_ENV"] == "production"


def browser_cookie_name():
    # In production the __Host- prefix makes browsers refuse the cookie unless it is Secure, for
    # this host only (no Domain) and for every path: no sibling subdomain can plant one.
    return f"__Host-{BROWSER_COOKIE}" if _secure() else BROWSER_COOKIE


def bound_browser():
    """The value of this browser's binding cookie, or None."""
    value = request.cookies.get(browser_cookie_name(), "")
    return value if _COOKIE_VALUE.match(value) else None


def browser_binding():
    """This browser's binding value, or a new one: flows begun in several tabs share it."""
    return bound_browser() or secrets.token_urlsafe(32)


def bind_browser(response, value, seconds):
    """Set the binding cookie on ``response``: HttpOnly, SameSite=Lax (sent on the provider's
    top-level redirect back), Secure in production, for ``seconds``."""
    response.set_cookie(
        browser_cookie_name(), value, max_age=seconds, path="/", secure=_secure(), httponly=True, samesite="Lax"
    )
    return response
