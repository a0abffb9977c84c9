"""Helpers for the API key tests."""
from tests.conftest import bearer, login, register

API_KEYS = "/api/v1/api-keys"


def create_api_key(client, access_token, name="script", **fields):
    response = client.post(API_KEYS, json={"name": name, **fields}, headers=bearer(access_token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def signed_up(client, email="user@example.com"):
    """Register and log in; the user's access token."""
    register(client, email)
    return login(client, email)["access_token"]
