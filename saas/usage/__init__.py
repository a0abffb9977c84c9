"""Token usage: one record per model call, monthly quotas per plan, Stripe metered billing."""
