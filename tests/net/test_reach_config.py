"""``[net]`` reachability options are validated like every other config value."""

from __future__ import annotations

import pytest

from wwwserve_p2p.errors import ConfigError
from wwwserve_p2p.net.config import Libp2pConfig

RELAY = "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWLMhrZBDnpbGPmZvekQ4aAun8siH2gexonz4umJesJ6Aa"


def test_defaults_are_a_private_aware_client_and_no_relay_service() -> None:
    c = Libp2pConfig()
    assert (c.reachability, c.relay_service, c.hole_punch, c.autonat_server, c.relay_count) == (
        "auto", False, True, True, 2)
    Libp2pConfig(relays=(RELAY,), relay_service=True, reachability="private", relay_count=0)


@pytest.mark.parametrize("kwargs", [
    {"reachability": "maybe"},
    {"relays": ("/ip4/10.0.0.1/tcp/4001",)},  # no /p2p/<PeerId>
    {"relays": RELAY},  # a string, not a tuple
    {"relay_service": 1},
    {"relay_count": -1},
    {"relay_max_circuits": 0},
    {"relay_circuit_bytes": 0},
    {"relay_circuit_duration": -1.0},
    {"relay_reservation_ttl": 5.0},
    {"reachability_interval": float("inf")},
])
def test_bad_values_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Libp2pConfig(**kwargs)
