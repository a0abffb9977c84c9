"""API keys: issued to an organization, stored as SHA-256 hashes, the API_KEY scheme."""
from saas.apikeys.routes import blp, org_keys_blp

__all__ = ["blp", "org_keys_blp"]
