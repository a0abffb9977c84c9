"""What every package shares: time, ids, column types, domain errors, Redis and RQ.

Nothing here imports a feature package or reads Flask's request context.
"""
