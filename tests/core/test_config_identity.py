import os
import stat

import pytest

from wwwserve_p2p.config import load_config
from wwwserve_p2p.errors import ConfigError
from wwwserve_p2p.identity import Identity, public_bytes_from_peer_id, verify


def test_defaults_and_overrides(tmp_path):
    f = tmp_path / "n.toml"
    f.write_text('[node]\nnetwork = "x"\n[policy]\ntarget_load = 0.7\n[executor]\nkind = "echo"\nmodels = ["a"]\n')
    boot = f"/ip4/127.0.0.1/tcp/1/p2p/{Identity.generate().peer_id}"
    c = load_config(f, ["policy.accept_frequency=0.25", f"net.bootstrap={boot}", "api.port=0"])
    assert c.policy.target_load == 0.7 and c.policy.accept_frequency == 0.25
    assert c.net.bootstrap == (boot,)
    assert c.executor == {"kind": "echo", "models": ["a"]}
    assert c.genesis().network_id == load_config(None, ["node.network=x"]).genesis().network_id != load_config().genesis().network_id


@pytest.mark.parametrize("override,match", [
    ("policy.nope=1", "unknown key"), ("bogus.x=1", "unknown config section"),
    ("policy.accept_frequency=2", "accept_frequency"), ("api.enabled=3", "true or false"),
    ("net.bootstrap=/ip4/1.2.3.4/tcp/1", "/p2p/"), ("policyaccept", "section.key=value"),
    ("net.listen=/ip4/1.2.3.4/udp/1", "not a TCP multiaddr"), ("net.gossip_max_bytes=2000000", "<="),
])
def test_bad_config_is_a_clear_error(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


def test_identity_persisted_with_0600(tmp_path):
    a = Identity.load_or_create(tmp_path / "d")
    path = tmp_path / "d" / "identity.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    b = Identity.load_or_create(tmp_path / "d")
    assert a.peer_id == b.peer_id and a.peer_id.startswith("12D3KooW")
    assert len(public_bytes_from_peer_id(a.peer_id)) == 32
    sig = a.sign("wwwserve/v1/test", b"payload")
    assert verify(a.peer_id, "wwwserve/v1/test", b"payload", sig)
    assert not verify(a.peer_id, "wwwserve/v1/other", b"payload", sig)
    assert not verify(Identity.generate().peer_id, "wwwserve/v1/test", b"payload", sig)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Identity.load_or_create(tmp_path / "d")
