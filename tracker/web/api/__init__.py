"""The JSON API, mounted at ``/api``: auth, body parsing and error documents live here only."""
