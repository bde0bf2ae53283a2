"""Each workaround in :mod:`wwwserve_p2p.net.libp2p.compat` shows its patched behaviour, on
real py-libp2p objects (hosts that are built but mostly not run), plus the version guard."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.rpc_queue import RpcQueue
from multiaddr import Multiaddr

from wwwserve_p2p.errors import OverlayError
from wwwserve_p2p.identity import Identity
from wwwserve_p2p.net.libp2p import compat, open_libp2p_overlay

LOOPBACK = [Multiaddr("/ip4/127.0.0.1/tcp/0")]


def _peer() -> ID:
    return ID.from_pubkey(create_new_key_pair().public_key)


def _router() -> compat.OverlayGossipSub:
    return compat.OverlayGossipSub(protocols=[PROTOCOL_ID_V11], degree=6, degree_low=4, degree_high=12)


def _pubsub(strict_signing: bool = False, queue: int = 8) -> tuple[compat.OverlayPubsub, SimpleNamespace]:
    """An OverlayPubsub on a real (not running) host; ``seen`` records its callbacks."""
    seen = SimpleNamespace(delivered=[], bad=[], drops=[])
    ps = compat.OverlayPubsub(
        new_host(key_pair=create_new_key_pair()), _router(), strict_signing=strict_signing,
        deliver=lambda msg, fwd: seen.delivered.append((msg, fwd)),
        on_bad_message=lambda peer, exc: seen.bad.append((peer, exc)),
        outbound_queue_size=queue, on_queue_drop=seen.drops.append)
    return ps, seen


def _message(author: ID, data: bytes = b"x", seqno: int = 1, topic: str = "t") -> rpc_pb2.Message:
    return rpc_pb2.Message(data=data, topicIDs=[topic], from_id=author.to_bytes(), seqno=seqno.to_bytes(8, "big"))


# ------------------------------------------------------------------------------ version guard


def test_version_guard_accepts_the_tested_version() -> None:
    assert compat.installed_libp2p_version() in compat.TESTED_LIBP2P_VERSIONS
    assert compat.check_libp2p_version() == compat.installed_libp2p_version()


def test_version_guard_refuses_an_untested_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "installed_libp2p_version", lambda: "0.9.0")
    monkeypatch.delenv(compat.ALLOW_UNTESTED_ENV, raising=False)
    with pytest.raises(OverlayError) as info:
        compat.check_libp2p_version()
    text = str(info.value)
    for needle in ("0.9.0", "0.8.1", "pip install libp2p==0.8.1", compat.ALLOW_UNTESTED_ENV):
        assert needle in text


def test_version_guard_escape_hatch_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(compat, "installed_libp2p_version", lambda: "0.9.0")
    monkeypatch.setenv(compat.ALLOW_UNTESTED_ENV, "1")
    with caplog.at_level(logging.WARNING, logger="wwwserve_p2p.net"):
        assert compat.check_libp2p_version() == "0.9.0"
    assert any("0.9.0" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


async def test_overlay_start_refuses_an_untested_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compat, "installed_libp2p_version", lambda: "0.7.0")
    monkeypatch.delenv(compat.ALLOW_UNTESTED_ENV, raising=False)
    with pytest.raises(OverlayError, match="0.7.0"):
        async with open_libp2p_overlay(Identity.generate()):
            pass  # pragma: no cover


# ------------------------------------------------------------------------------ dialing


async def test_remove_dial_delay_makes_a_dial_return_without_the_250_ms_wait() -> None:
    import libp2p.network.swarm as swarm_module

    server, plain, fast = (new_host(key_pair=create_new_key_pair()) for _ in range(3))
    assert compat.remove_dial_delay(fast.get_network())
    assert fast.get_network().dial_peer.__func__.__globals__["_HAPPY_EYEBALLS_DELAY"] == 0.0
    assert swarm_module._HAPPY_EYEBALLS_DELAY == 0.25  # the module (and other hosts) unchanged
    # The fast host's head-start waits are recorded, not timed: an upper bound on a dial's
    # duration fails on a loaded box, the argument of the wait does not.
    waits: list[float] = []
    fast_globals = fast.get_network().dial_peer.__func__.__globals__

    class _RecordingTrio:
        def __getattr__(self, name):
            return getattr(trio, name)

        @staticmethod
        def move_on_after(seconds, *args, **kwargs):
            waits.append(seconds)
            return trio.move_on_after(seconds, *args, **kwargs)

    fast_globals["trio"] = _RecordingTrio()
    async with server.run(LOOPBACK), plain.run(LOOPBACK), fast.run(LOOPBACK):
        try:
            info = info_from_p2p_addr(server.get_addrs()[0])
            took = {}
            for name, host in (("plain", plain), ("fast", fast)):
                t0 = trio.current_time()
                with trio.fail_after(30):
                    await host.connect(info)
                took[name] = trio.current_time() - t0
            assert took["plain"] >= 0.25, took  # the library's head start, a lower bound
            assert waits and set(waits) == {0.0}, waits  # the fast host waited 0 s wherever it would wait
        finally:
            for host in (server, plain, fast):
                await host.close()


def test_remove_dial_delay_changes_nothing_if_the_library_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    import libp2p.network.swarm as swarm_module

    swarm = new_host(key_pair=create_new_key_pair()).get_network()
    monkeypatch.delattr(swarm_module, "_HAPPY_EYEBALLS_DELAY")
    assert compat.remove_dial_delay(swarm) is False
    assert "dial_peer" not in vars(swarm)


# ------------------------------------------------------------------------------ address list


def test_cache_addrs_memoises_per_listener_set_for_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    host = new_host(key_pair=create_new_key_pair())
    calls = []

    def rebuild() -> list[str]:  # stands in for BasicHost.get_addrs (~50 us each)
        calls.append(1)
        return [f"/ip4/127.0.0.1/tcp/{len(calls)}"]

    host.get_addrs = rebuild
    now = [100.0]
    monkeypatch.setattr(compat.time, "monotonic", lambda: now[0])
    compat.cache_addrs(host, ttl=1.0)
    first = host.get_addrs()
    first.append("mutated by the caller")
    assert host.get_addrs() == ["/ip4/127.0.0.1/tcp/1"]  # memoised, and callers get a copy
    now[0] += 1.5
    assert host.get_addrs() == ["/ip4/127.0.0.1/tcp/2"]  # expired after ttl
    listeners = host.get_network().listeners
    listeners["/ip4/127.0.0.1/tcp/9"] = None  # a new listener set: recomputed at once
    try:
        assert host.get_addrs() == ["/ip4/127.0.0.1/tcp/3"]
    finally:
        listeners.clear()


# ------------------------------------------------------------------------------ pubsub


def test_outbound_queue_is_resized_and_counts_drops() -> None:
    ps, seen = _pubsub(queue=2)
    assert isinstance(ps.peer_queues, compat._QueueSizingDict)
    peer = _peer()
    ps.peer_queues[peer] = RpcQueue()  # what Pubsub._handle_new_peer does
    queue = ps.peer_queues[peer]
    rpcs = [rpc_pb2.RPC(publish=[_message(peer, seqno=i)]) for i in range(3)]
    assert [queue.push(r) for r in rpcs] == [True, True, False]  # library default: 32 slots
    assert seen.drops == [rpcs[2]]
    busy = RpcQueue()
    busy.push(rpcs[0])
    ps.peer_queues[_peer()] = busy  # a queue already in use is left alone
    assert not isinstance(busy._queue, compat._CountingPriorityQueue)


def test_equivocation_check_keeps_a_digest_and_spots_reused_seqnos() -> None:
    router = _router()
    author = _peer()
    msg = _message(author, b"payload" * 1000, seqno=7)
    assert router._check_equivocation(msg)
    stored = router.equivocation_detection[msg.from_id + msg.seqno]
    assert isinstance(stored, bytes) and len(stored) == 32  # a SHA-256, not the 7 kB message
    assert router._check_equivocation(_message(author, b"payload" * 1000, seqno=7))  # a duplicate is fine
    assert not router._check_equivocation(_message(author, b"other", seqno=7))  # same seqno, new content
    assert not router._check_equivocation(_message(author, b"payload" * 1000, seqno=7, topic="u"))
    assert router._check_equivocation(_message(author, b"other", seqno=8))


async def test_pubsub_delivers_through_the_hook_with_the_forwarder_once_per_message() -> None:
    ps, seen = _pubsub()
    author, forwarder = _peer(), _peer()
    msg = _message(author)
    await ps.push_msg(forwarder, msg)
    await ps.push_msg(author, msg)  # the same message again, from another neighbour: seen-cache
    assert [(m.data, f) for m, f in seen.delivered] == [(b"x", forwarder)]
    assert ps.inbound_messages == 2 and not seen.bad
    assert compat._FORWARDER.get() is None  # reset after each message


async def test_pubsub_contains_an_exception_from_one_inbound_message() -> None:
    ps, seen = _pubsub()

    def buggy(forwarder: ID, msg: rpc_pb2.Message) -> bool:
        raise RuntimeError("cannot handle this input")

    ps.set_topic_validator("t", buggy, False)  # py-libp2p lets a sync validator's error escape
    forwarder = _peer()
    await ps.push_msg(forwarder, _message(_peer()))
    assert [(p, type(e)) for p, e in seen.bad] == [(forwarder, RuntimeError)] and not seen.delivered
    with pytest.raises(RuntimeError):  # our own publish still raises to the publisher
        await ps.push_msg(ps.my_id, _message(ps.my_id))


async def test_pubsub_stream_handler_error_resets_the_stream_and_drops_the_peer() -> None:
    ps, seen = _pubsub()
    peer = _peer()
    ps.peers[peer] = PROTOCOL_ID_V11
    resets = []

    async def read_fails(stream: object) -> None:
        raise RuntimeError("undecodable RPC")

    async def reset_also_fails() -> None:
        resets.append(1)
        raise OSError("connection already gone")

    ps.continuously_read_stream = read_fails  # type: ignore[method-assign]
    stream = SimpleNamespace(muxed_conn=SimpleNamespace(peer_id=peer), reset=reset_also_fails)
    await ps.stream_handler(stream)  # does not raise
    assert [(p, type(e)) for p, e in seen.bad] == [(peer, RuntimeError)]
    assert resets == [1] and peer not in ps.peers


# ------------------------------------------------------------------------------ notifee


async def test_connection_logger_reports_connect_and_disconnect_and_never_raises() -> None:
    events = []
    notifee = compat.ConnectionLogger(lambda what, conn: events.append((what, conn.muxed_conn.peer_id)))
    host = new_host(key_pair=create_new_key_pair())
    host.get_network().register_notifee(notifee)  # a complete INotifee
    peer = _peer()
    conn = SimpleNamespace(muxed_conn=SimpleNamespace(peer_id=peer))
    await notifee.connected(host.get_network(), conn)
    await notifee.disconnected(host.get_network(), conn)
    for method in (notifee.opened_stream, notifee.closed_stream, notifee.listen, notifee.listen_close):
        await method(host.get_network(), None)
    assert events == [("connected", peer), ("disconnected", peer)]

    def failing(what: str, pid: ID) -> None:
        raise RuntimeError("statistics bug")

    await compat.ConnectionLogger(failing).connected(host.get_network(), conn)  # swallowed
    await compat.ConnectionLogger(events.append).connected(host.get_network(), object())  # no muxed_conn


# ------------------------------------------------------------------------------ logging


@pytest.fixture
def libp2p_logging() -> object:
    """Our logging configuration, with the ``libp2p`` logger's level restored afterwards."""
    lg = logging.getLogger("libp2p")
    before = lg.level
    # the wwwserve command's own noise filter (wwwserve_p2p.logs), installed on py-libp2p's DHT
    # loggers by earlier in-process CLI tests, lowers every DHT warning: these tests are about
    # compat's filters alone, so it is taken off for their duration
    from wwwserve_p2p.logs import Libp2pNoiseFilter
    held = []
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("libp2p"):
            other = logging.getLogger(name)
            for f in [f for f in other.filters if isinstance(f, Libp2pNoiseFilter)]:
                other.removeFilter(f)
                held.append((other, f))
    compat.configure_libp2p_logging("WARNING")
    yield lg
    lg.setLevel(before)
    for other, f in held:
        other.addFilter(f)


def test_root_logging_module_is_rerouted_to_its_own_logger(libp2p_logging: logging.Logger,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    import libp2p.network.connection.swarm_connection as module

    root_handlers = list(logging.getLogger().handlers)
    assert isinstance(module.logging, compat._ModuleLogger)
    assert module.logging.DEBUG == logging.DEBUG  # everything else still reaches `logging`
    with caplog.at_level(logging.WARNING):
        module.logging.warning("from swarm_connection")
    assert [r.name for r in caplog.records if r.getMessage() == "from swarm_connection"] == [module.__name__]
    assert logging.getLogger().handlers == root_handlers  # no basicConfig() on the root logger
    assert libp2p_logging.propagate and libp2p_logging.level == logging.WARNING


def test_benign_dht_eof_warning_is_dropped(libp2p_logging: logging.Logger,
                                           caplog: pytest.LogCaptureFixture) -> None:
    dht = logging.getLogger("libp2p.kad_dht.kad_dht")
    with caplog.at_level(logging.WARNING):
        dht.warning("Failed to read DHT message from stream: %s", StreamEOF())
        dht.warning("Failed to read DHT message from stream: %s", RuntimeError("real problem"))
    assert [r.getMessage() for r in caplog.records] == ["Failed to read DHT message from stream: real problem"]


@pytest.mark.parametrize("logger,message", [
    ("libp2p.transport.tcp.tcp", "Failed to open TCP stream: connection refused"),
    ("libp2p.host.basic_host", "Failed to open stream to peer 12D3KooW...: reset"),
    ("libp2p.protocol_muxer.multiselect_client", "MultiselectClient handshake: EOF"),
    ("libp2p.stream_muxer.yamux.yamux", "Error in handle_incoming for peer X: ConnectionClosedError()"),
    ("libp2p.kad_dht.kad_dht", "FIND_NODE key is not a valid PeerId (64 bytes), ignoring"),
])
def test_routine_errors_are_demoted_to_debug(libp2p_logging: logging.Logger, caplog: pytest.LogCaptureFixture,
                                             logger: str, message: str) -> None:
    lg = logging.getLogger(logger)
    with caplog.at_level(logging.DEBUG):
        lg.error(message)  # dropped while libp2p logs at WARNING
        assert not caplog.records
        libp2p_logging.setLevel(logging.DEBUG)
        lg.warning(message)  # kept, as DEBUG, when libp2p logs at DEBUG
    assert [(r.getMessage(), r.levelname) for r in caplog.records] == [(message, "DEBUG")]


def test_unrelated_errors_are_kept(libp2p_logging: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        logging.getLogger("libp2p.stream_muxer.yamux.yamux").error("Error in handle_incoming for peer X: KeyError")
        logging.getLogger("libp2p.transport.tcp.tcp").error("Listener crashed")
    assert [r.levelname for r in caplog.records] == ["ERROR", "ERROR"]
