"""The HTTP ingest gateway service (``codex-analytics gateway``)."""
