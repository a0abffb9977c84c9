"""Rate limits of the public steps of a social login (RATELIMIT_OAUTH_IP, per client address)."""
from flask import current_app

from saas.extensions import limiter
from saas.web.requests import client_ip_key

# Every request counts: each step is public, and none needs many tries.
oauth_ip_limit = limiter.limit(
    lambda: current_app.config["RATELIMIT_OAUTH_IP"], key_func=client_ip_key, scope="oauth-ip"
)
