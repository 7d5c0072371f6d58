"""Publishing facts to Kafka: the transport seam (``FactTransport``), the record layout
and the bulk publisher, shared by the client library, the gateway and the CLI."""
