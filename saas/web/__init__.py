"""The HTTP layer every feature's routes stand on: the Api and Blueprint (with the one auth
gate), the error handlers, request logs, metrics and security headers."""
