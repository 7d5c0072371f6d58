"""Benchmarks: ``python -m bench <suite>`` (see ``python -m bench --help``)."""
