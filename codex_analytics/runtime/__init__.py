"""The runtime kernel: the only shared code the services import.

Kafka client glue, settings reads, logging, metrics, the small HTTP side door, dead
letters and progress. It imports the contract and third-party libraries, never a
service, a tool or the CLI (``./dev lint`` checks this with import-linter).
"""
