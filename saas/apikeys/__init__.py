"""API keys: long-lived credentials for scripts, accepted where an access token is."""
