"""Producers: the client library, the plugins manager, the ingest gateway, the generator."""
