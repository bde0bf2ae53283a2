"""Pure parts of issue 15's defenses: the dial gate (per transport address and in total) and
the HTTP JSON depth scanner."""

from wwwserve_p2p.api.limits import check_request, json_depth
from wwwserve_p2p.services.membership import DialGate, transport_addr


def test_dial_gate_one_dial_per_transport_address_per_interval_whatever_the_peer_id():
    g = DialGate(rate=100.0, burst=100, addr_interval=60.0)
    assert transport_addr("/ip4/1.2.3.4/tcp/80/p2p/12D3KooWA") == "/ip4/1.2.3.4/tcp/80"
    assert g.allow("/ip4/1.2.3.4/tcp/80/p2p/12D3KooWA", 0.0)
    assert not g.allow("/ip4/1.2.3.4/tcp/80/p2p/12D3KooWB", 1.0)  # same address, another fresh id
    assert not g.allow("/ip4/1.2.3.4/tcp/80/p2p/12D3KooWC", 59.9)
    assert g.allow("/ip4/1.2.3.4/tcp/80/p2p/12D3KooWD", 60.0)
    assert g.stats["dials"] == 2 and g.stats["dials_refused_addr"] == 2


def test_dial_gate_total_rate_and_bounded_memo():
    g = DialGate(rate=1.0, burst=3, addr_interval=60.0, max_addrs=10)
    allowed = sum(g.allow(f"/ip4/10.0.0.{i}/tcp/1", 0.0) for i in range(50))
    assert allowed == 3 and g.stats["dials_refused_rate"] == 47
    for i in range(100):
        g.allow(f"/ip4/10.1.{i}.1/tcp/1", 10.0 + i)  # 1/s refill: about one each
    assert len(g._last) <= 10


def test_json_depth_ignores_brackets_in_strings():
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"[" * 100 + b"]" * 100) == 100
    assert check_request(b"[" * 65 + b"]" * 65) is not None
    assert check_request(b'{"model": "m", "messages": [{"role": "user", "content": "ok"}]}') is None
