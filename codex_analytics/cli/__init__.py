"""The ``codex-analytics`` command-line tool."""
