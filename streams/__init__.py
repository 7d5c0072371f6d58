"""The stream service: facts topic -> de-duplicated, reduced track events.

Importing this package is cheap; the pure reducer lives in :mod:`streams.reducer` and
imports neither Kafka nor Faust.
"""
