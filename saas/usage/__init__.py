"""Token usage: quotas per plan and month, reservations, and reports to the Stripe meter."""
from saas.usage.routes import blp

__all__ = ["blp"]
