"""tracker: a self-hosted link shortener and click/conversion tracker for SMS campaigns."""

__version__ = "0.1.0"
