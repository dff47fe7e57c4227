"""A real broker of a test's own (not the session's ``kafka_broker``): tests that stop and restart
it, or that need a SASL/PLAIN listener besides the plaintext one, must not disturb the others."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stream.kafka.broker import LocalBroker
from stream.kafka.config import LocalBrokerConfig
from tests.conftest import free_ports

SASL_USER = "alice"
SASL_PASSWORD = "alice-secret"


@dataclass
class OwnBroker:
    """A local broker with a PLAINTEXT listener (``bootstrap``) and a SASL_PLAINTEXT/PLAIN
    listener (``sasl_bootstrap``) that knows user ``SASL_USER`` with ``SASL_PASSWORD``."""

    broker: LocalBroker
    sasl_port: int

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def sasl_client(self, password: str = SASL_PASSWORD) -> dict[str, str]:
        """``kafka.client`` settings for the SASL listener."""
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": SASL_USER,
            "sasl.password": password,
        }

    def up(self) -> None:
        self.broker.up()

    def down(self) -> None:
        self.broker.down()


def start_own_broker(data_dir: Path) -> OwnBroker:
    """Start a broker on free ports with its data in ``data_dir``; call ``down()`` when done."""
    port, controller_port, sasl_port = free_ports(3)
    jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_{SASL_USER}="{SASL_PASSWORD}";'
    properties = {
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
        f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
    }
    broker = LocalBroker(
        LocalBrokerConfig(
            port=port,
            controller_port=controller_port,
            data_dir=str(data_dir),
            jars_dir=os.environ.get("PEPNET_KAFKA_LOCAL_BROKER_JARS_DIR", ""),
            properties=properties,
        )
    )
    own = OwnBroker(broker, sasl_port)
    own.up()
    return own
