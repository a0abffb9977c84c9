"""Stripe billing: customers, checkout, portal, webhooks, subscriptions and plans."""
from saas.billing.routes import blp

__all__ = ["blp"]
