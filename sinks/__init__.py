"""The sink service: batched, authenticated delivery of track events."""
