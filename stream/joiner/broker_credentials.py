"""Map the librdkafka security settings of ``kafka.client`` onto faust's ``broker_credentials``.

Every confluent-kafka client gets ``kafka.client`` as is; the faust worker talks to Kafka through
aiokafka instead, which takes a faust credentials object and an ``ssl.SSLContext``. Settings
that aiokafka cannot honour raise :class:`UserError` naming the key, rather than connecting
without the security the user asked for.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

import faust

from stream.config.errors import UserError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Security keys this module understands; any other key starting with one of SECURITY_PREFIXES
# would be silently dropped for the worker, so it is refused.
MAPPED_KEYS = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.mechanisms",  # librdkafka's older spelling of sasl.mechanism
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.endpoint.identification.algorithm",
    }
)
SECURITY_PREFIXES = ("security.", "sasl.", "ssl.")


def faust_broker_credentials(client: Mapping[str, Any]) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """faust ``broker_credentials`` equivalent to the librdkafka settings ``client`` (None: plaintext).

    Raises UserError, one line naming the ``kafka.client`` key, for a setting that cannot be mapped.
    """
    for key in client:
        if key.startswith(SECURITY_PREFIXES) and key not in MAPPED_KEYS:
            raise UserError(f"kafka.client.{key} cannot be passed to the faust worker (aiokafka); supported: "
                            f"{', '.join(sorted(MAPPED_KEYS))}")  # fmt: skip
    protocol = str(client.get("security.protocol", "PLAINTEXT")).upper()
    if protocol not in PROTOCOLS:
        raise UserError(f"kafka.client.security.protocol is {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if not protocol.startswith("SASL"):
        for key in ("sasl.mechanism", "sasl.mechanisms", "sasl.username", "sasl.password"):
            if key in client:
                raise UserError(f"kafka.client.{key} is set but security.protocol is {protocol}; expected SASL_*")
    if not protocol.endswith("SSL"):
        for key in client:
            if key.startswith("ssl."):
                raise UserError(f"kafka.client.{key} is set but security.protocol is {protocol}; expected *SSL")
    context = _ssl_context(client) if protocol.endswith("SSL") else None
    if protocol.startswith("SASL"):
        return _sasl_credentials(client, context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def _sasl_credentials(client: Mapping[str, Any], context: ssl.SSLContext | None) -> faust.SASLCredentials:
    mechanism = str(client.get("sasl.mechanism", client.get("sasl.mechanisms", "PLAIN"))).upper()
    if mechanism not in SASL_MECHANISMS:
        raise UserError(
            f"kafka.client.sasl.mechanism is {mechanism!r}; the faust worker supports {', '.join(SASL_MECHANISMS)}"
        )
    for key in ("sasl.username", "sasl.password"):
        if not client.get(key):
            raise UserError(f"kafka.client.{key} is missing; SASL {mechanism} needs a username and a password")
    return faust.SASLCredentials(
        username=str(client["sasl.username"]),
        password=str(client["sasl.password"]),
        mechanism=mechanism,
        ssl_context=context,
    )


def _ssl_context(client: Mapping[str, Any]) -> ssl.SSLContext:
    """A client SSL context: CA file (else the system's), optional client certificate and key."""
    ca = client.get("ssl.ca.location")
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as e:
        raise UserError(f"kafka.client.ssl.ca.location {ca!r} cannot be loaded: {e}") from None
    certificate, key = client.get("ssl.certificate.location"), client.get("ssl.key.location")
    if bool(certificate) != bool(key):
        missing = "ssl.key.location" if certificate else "ssl.certificate.location"
        raise UserError(
            f"kafka.client.{missing} is missing; a client certificate needs both the certificate and its key"
        )
    if certificate:
        try:
            context.load_cert_chain(str(certificate), str(key), password=client.get("ssl.key.password"))
        except (OSError, ssl.SSLError) as e:
            raise UserError(f"kafka.client.ssl.certificate.location {certificate!r} / ssl.key.location {key!r} "
                            f"cannot be loaded: {e}") from None  # fmt: skip
    algorithm = str(client.get("ssl.endpoint.identification.algorithm", "https")).lower()
    if algorithm not in ("https", "none"):
        raise UserError(f"kafka.client.ssl.endpoint.identification.algorithm is {algorithm!r}; expected https or none")
    if algorithm == "none":  # librdkafka: do not check the broker's host name against its certificate
        context.check_hostname = False
    return context
