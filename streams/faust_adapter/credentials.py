"""The cluster's security as Faust's ``broker_credentials``: Faust hands them to every
Kafka client it opens (the consumer, the producer, and the producer's client that
creates the changelog topic), through its own ``credentials_to_aiokafka_auth``.

Built from :meth:`KafkaCluster.client_options` (the one builder of aiokafka options),
so Faust's clients get the very TLS context and SASL settings every other client gets;
``tests/unit/test_kafka_security.py`` checks that Faust's translation gives back those
options for every protocol and mechanism.
"""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from codex_analytics.runtime.kafka import KafkaCluster


def broker_credentials(cluster: KafkaCluster) -> CredentialsT | None:
    """None for ``PLAINTEXT`` (Faust's default), else the credentials of the cluster."""
    options = cluster.security.client_options()
    protocol = options["security_protocol"]
    context = options.get("ssl_context")
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism = options["sasl_mechanism"]
    if mechanism == "OAUTHBEARER":
        return faust.OAuthCredentials(
            oauth_cb=options["sasl_oauth_token_provider"], ssl_context=context
        )
    # Faust's repr of these shows the user name only.
    return faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        ssl_context=context,
        mechanism=mechanism,
    )
