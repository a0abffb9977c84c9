"""Issue 12 on the embedded default of `make run` (SQLite, no Redis, no SMTP_HOST): mail goes to
the console backend, whose log lines carry the links, and every flow works with them."""
import logging
import re

import pytest

from tests.helpers import PASSWORD, bearer, login, register

LINK = re.compile(r"http://localhost:3000/[a-z-]+\?token=([A-Za-z0-9_.\-]+)")
NEW_PASSWORD = "a fresh passphrase nobody knows"


class Printed(logging.Handler):
    """What the console backend wrote: one record per message."""

    def __init__(self):
        super().__init__()
        self.mails = []

    def emit(self, record):
        if hasattr(record, "mail"):
            self.mails.append(record.mail)

    def token_for(self, address, subject_part):
        matching = [m for m in self.mails if m["to"] == address and subject_part in m["subject"]]
        assert matching, [(m["to"], m["subject"]) for m in self.mails]
        return LINK.search(matching[-1]["text"]).group(1)


@pytest.fixture
def console(embedded_with):
    printed = Printed()
    client = embedded_with()
    assert client.application.config["MAIL_BACKEND"] == "console"
    logger = logging.getLogger("saas.mail")
    # `make run` logs at INFO; the fixture's in-process migration left Alembic's levels behind.
    level, logger.level = logger.level, logging.INFO
    logger.addHandler(printed)
    yield client, printed
    logger.removeHandler(printed)
    logger.setLevel(level)


def test_verification_through_the_console_backend(console):
    client, printed = console
    register(client, "dev@example.com")
    token = printed.token_for("dev@example.com", "Confirm your email")
    assert client.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 204
    access = login(client, "dev@example.com")["access_token"]
    assert client.get("/api/v1/users/me", headers=bearer(access)).get_json()["email_verified"] is True


def test_password_reset_through_the_console_backend(console):
    client, printed = console
    register(client, "forgot@example.com")
    assert client.post("/api/v1/auth/password-reset", json={"email": "forgot@example.com"}).status_code == 202
    token = printed.token_for("forgot@example.com", "Reset")
    confirm = client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert confirm.status_code == 204
    login(client, "forgot@example.com", NEW_PASSWORD)
    assert any("was changed" in m["subject"] for m in printed.mails)


def test_email_change_through_the_console_backend(console):
    client, printed = console
    register(client, "before@example.com")
    access = login(client, "before@example.com")["access_token"]
    response = client.post(
        "/api/v1/users/me/email", json={"email": "after@example.com", "current_password": PASSWORD}, headers=bearer(access)
    )
    assert response.status_code == 202
    token = printed.token_for("after@example.com", "new email address")
    assert client.post("/api/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert client.get("/api/v1/users/me", headers=bearer(access)).get_json()["email"] == "after@example.com"
