"""Helpers for the API key, AI and usage tests."""
import json

import sqlalchemy as sa

from saas.extensions import db
from saas.usage.models import UsageRecord
from tests.helpers import bearer

CHAT = "/api/v1/ai/chat"
JOBS = "/api/v1/ai/jobs"
USAGE = "/api/v1/usage"
API_KEYS = "/api/v1/api-keys"
# A long answer, so a call uses all of its max_tokens (AI_MAX_TOKENS is 100 in the suite).
LONG_REPLY = " ".join(f"word{number}" for number in range(300))


def messages(text="Say hello"):
    return [{"role": "user", "content": text}]


def create_api_key(client, access_token, name="script", **fields):
    response = client.post(API_KEYS, json={"name": name, **fields}, headers=bearer(access_token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def usage_records():
    db.session.expire_all()
    return db.session.scalars(sa.select(UsageRecord).order_by(UsageRecord.id)).all()


def server_sent_events(text):
    """``[(event, data), ...]`` from a text/event-stream body."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields.get("event"), json.loads(fields["data"])))
    return events
