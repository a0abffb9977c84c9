"""The seed's manual flow, over HTTP, against gunicorn in production mode."""
import requests

from tests.helpers import PASSWORD
from tests.servers import gunicorn

PRODUCTION_SECRET = "production-grade-secret-key-of-more-than-32-bytes"


def test_seed_manual_flow_under_gunicorn_in_production(database, fake_stripe):
    with gunicorn(APP_ENV="production", SECRET_KEY=PRODUCTION_SECRET, DEBUG="false") as server:
        base = server.url
        health = requests.get(f"{base}/health", timeout=10)
        assert health.status_code == 200
        assert health.json() == {"status": "healthy", "database": "ok", "redis": "ok"}

        root = requests.get(f"{base}/", timeout=10)
        assert root.json()["docs"] == "/docs"

        registered = requests.post(
            f"{base}/api/v1/auth/register",
            json={"email": "Seed.User@Example.com", "password": PASSWORD, "full_name": "Seed User"},
            timeout=10,
        )
        assert registered.status_code == 201
        assert registered.json()["email"] == "seed.user@example.com"

        login = requests.post(
            f"{base}/api/v1/auth/login",
            data={"username": "seed.user@example.com", "password": PASSWORD},
            timeout=10,
        )
        assert login.status_code == 200
        assert login.headers["Strict-Transport-Security"].startswith("max-age=")
        tokens = login.json()
        assert tokens["token_type"] == "bearer"

        me = requests.get(
            f"{base}/api/v1/users/me",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=10,
        )
        assert me.status_code == 200
        assert me.json()["full_name"] == "Seed User"

        docs = requests.get(f"{base}/docs", timeout=10)
        assert docs.status_code == 200 and "text/html" in docs.headers["Content-Type"]


def test_production_serves_json_errors_without_stack_traces(database):
    with gunicorn(APP_ENV="production", SECRET_KEY=PRODUCTION_SECRET) as server:
        base = server.url
        response = requests.post(
            f"{base}/api/v1/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}, timeout=10
        )
        assert response.status_code == 400
        assert response.json()["code"] == 400
        assert "Traceback" not in response.text
