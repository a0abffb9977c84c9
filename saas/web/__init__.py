"""The HTTP layer every feature's routes stand on: the EnvelopeApi and ApiBlueprint (with the one auth
gate), the error handlers, request logs, metrics and security headers."""
