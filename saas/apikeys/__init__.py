"""API keys: long-lived credentials for scripts, accepted where an endpoint's gate allows API_KEY."""
from saas.apikeys.routes import blp

__all__ = ["blp"]
