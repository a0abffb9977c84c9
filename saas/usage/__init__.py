"""Token usage and quotas, per organization, and their reports to Stripe's meter."""
from saas.usage.routes import blp, org_usage_blp

__all__ = ["blp", "org_usage_blp"]
