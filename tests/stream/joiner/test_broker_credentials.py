"""kafka.client security settings -> faust broker_credentials (no broker needed)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from stream.config.errors import UserError
from stream.joiner.broker_credentials import faust_broker_credentials


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM), used as CA file and as client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_plaintext_maps_to_no_credentials() -> None:
    assert faust_broker_credentials({}) is None
    assert faust_broker_credentials({"security.protocol": "plaintext", "client.id": "x"}) is None
    assert credentials_to_aiokafka_auth(None)["security_protocol"] == "PLAINTEXT"


def test_sasl_plaintext_scram() -> None:
    credentials = faust_broker_credentials(
        {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
         "sasl.username": "alice", "sasl.password": "secret"}
    )  # fmt: skip
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("alice", "secret")
    assert auth["ssl_context"] is None


def test_sasl_ssl_with_ca_and_old_mechanisms_spelling(certificate: tuple[Path, Path]) -> None:
    cert, _ = certificate
    credentials = faust_broker_credentials(
        {"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN", "sasl.username": "bob",
         "sasl.password": "pw", "ssl.ca.location": str(cert)}
    )  # fmt: skip
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "PLAIN"
    context = auth["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "localhost"),),) for c in context.get_ca_certs())


def test_ssl_with_client_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    credentials = faust_broker_credentials(
        {"security.protocol": "SSL", "ssl.ca.location": str(cert), "ssl.certificate.location": str(cert),
         "ssl.key.location": str(key), "ssl.endpoint.identification.algorithm": "none"}
    )  # fmt: skip
    assert isinstance(credentials, faust.SSLCredentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SSL"
    assert auth["ssl_context"].check_hostname is False


@pytest.mark.parametrize(
    ("client", "message"),
    [
        ({"security.protocol": "TLS"}, "kafka.client.security.protocol is 'TLS'"),
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI", "sasl.username": "a", "sasl.password": "b"},
         "kafka.client.sasl.mechanism is 'GSSAPI'"),
        ({"security.protocol": "SASL_PLAINTEXT", "sasl.username": "a"}, "kafka.client.sasl.password is missing"),
        ({"security.protocol": "SSL", "ssl.keystore.location": "/k.p12"}, "kafka.client.ssl.keystore.location cannot"),
        ({"sasl.username": "a"}, "kafka.client.sasl.username is set but security.protocol is PLAINTEXT"),
        ({"security.protocol": "SASL_PLAINTEXT", "ssl.ca.location": "/ca.pem", "sasl.username": "a",
          "sasl.password": "b"}, "kafka.client.ssl.ca.location is set but security.protocol is SASL_PLAINTEXT"),
        ({"security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"},
         "kafka.client.ssl.ca.location '/nonexistent/ca.pem' cannot be loaded"),
        ({"security.protocol": "SSL", "ssl.certificate.location": "/c.pem"},
         "kafka.client.ssl.key.location is missing"),
    ],
)  # fmt: skip
def test_unmappable_settings_fail_with_one_line(client: dict[str, str], message: str) -> None:
    with pytest.raises(UserError) as error:
        faust_broker_credentials(client)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
