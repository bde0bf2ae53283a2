"""Discovery: announce provider records for our models in the DHT and connect to providers
of the models we serve or relay, so gossip and delegation streams can reach them."""

from __future__ import annotations

import logging

import trio

from ..errors import OverlayError
from ..executors.base import Executor
from ..net.base import Overlay
from .membership import Membership

log = logging.getLogger("wwwserve_p2p.discovery")

#: Seconds between re-announcements of our provider records.
REPROVIDE_INTERVAL = 3600.0


def model_key(network_id: str, model: str) -> str:
    """DHT key of the provider record for ``model`` on a network."""
    return f"/wwwserve/{network_id}/model/{model}"


async def run_discovery_service(overlay: Overlay, membership: Membership, executor: Executor, network_id: str,
                                interval: float) -> None:
    """Provide our models, then every ``interval`` seconds look up providers of the models we
    serve or know of and dial unknown ones."""
    first = True
    last_provide = -REPROVIDE_INTERVAL
    me = overlay.peer_id
    while True:
        models = set(executor.models())
        if trio.current_time() - last_provide >= REPROVIDE_INTERVAL:
            # provider records live 48 h in py-libp2p's DHT; re-announcing hourly is plenty
            for m in sorted(models):
                try:
                    await overlay.provide(model_key(network_id, m))
                except OverlayError as exc:
                    log.info("provide %s failed: %s", m, exc)
            last_provide = trio.current_time()
        models |= set(membership.network_models())
        connected = set(overlay.connected_peers())
        for m in sorted(models):
            try:
                found = await overlay.find_providers(model_key(network_id, m))
            except OverlayError as exc:
                log.info("find_providers %s failed: %s", m, exc)
                continue
            for pid in found:
                if pid not in connected and pid != me:
                    try:
                        addrs = overlay.peer_addrs(pid)
                        if addrs:
                            await overlay.connect(addrs[0] if "/p2p/" in addrs[0] else f"{addrs[0]}/p2p/{pid}")
                            connected.add(pid)
                            log.info("connected to provider %s of %s", pid, m)
                    except OverlayError as exc:
                        log.debug("dial provider %s failed: %s", pid, exc)
        await trio.sleep(2.0 if first else interval)
        first = False
