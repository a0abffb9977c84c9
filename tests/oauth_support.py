"""A relying party for the fake providers' own tests: a small Flask app with Authlib's client, as
the app will register it, and the browser's round trip through the provider."""
from urllib.parse import urlsplit

import requests
from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify

REDIRECT_URI = "http://localhost/callback"


def relying_party(callback, **registration):
    """The test client of a Flask app with Authlib's client registered as ``registration`` says:
    ``/login`` redirects to the provider, ``/callback`` answers ``callback(remote)`` as JSON, and any
    exception is a 400 ``{"error": <its class name>, "description"}``."""
    app = Flask(__name__)
    app.secret_key = "relying-party-session-key"
    remote = OAuth(app).register("provider", **registration)

    @app.get("/login")
    def login():
        return remote.authorize_redirect(REDIRECT_URI)

    @app.get("/callback")
    def callback_view():
        return jsonify(callback(remote))

    @app.errorhandler(Exception)
    def refused(error):
        return jsonify(error=type(error).__name__, description=str(error)), 400

    return app.test_client()


def sign_in(rp):
    """Log in as a browser would: the relying party's redirect, the provider's, then the callback."""
    login = rp.get("/login")
    assert login.status_code == 302, login.get_json()
    at_provider = requests.get(login.location, allow_redirects=False, timeout=5)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == REDIRECT_URI
    return rp.get(f"/callback?{back.query}")


def refusal(response):
    """The (error class, description) of a relying party's refusal."""
    assert response.status_code == 400, response.get_json()
    return response.get_json()["error"], response.get_json()["description"]
