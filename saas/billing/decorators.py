"""``@plan_required``: views for paying users only."""
import functools

from saas.billing.entitlements import require_plan
from saas.web.blueprint import current_principal


def plan_required(*plans):
    """Let a gated view run only when the caller's organization's plan is one of ``plans`` (any
    configured plan when none is named); others get a 402 naming the plans needed. Place it under
    ``@blp.auth(..., org="acting")`` (or ``org="path"``). A past_due subscription keeps its plan
    for BILLING_PAST_DUE_GRACE_DAYS."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            require_plan(current_principal().org, plans)
            return view(*args, **kwargs)

        return wrapper

    return decorator
