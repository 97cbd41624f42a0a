"""The HTTP side: the redirect hot path, the JSON API, operations endpoints."""
