"""Bounds of the peer table (issue 15): newcomers in a small pool that never evicts or starves
known peers; a flood of fresh identities is refused; touch() keeps a peer alive."""

from hypothesis import given, settings
from hypothesis import strategies as hs

from wwwserve_p2p.core.peers import PeerState, PeerTable, PeerTableConfig
from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus


def st(pid, seq=1):
    return PeerStatus(pid, 1, seq, ("m",), LoadSnapshot(0, 0, 2), True)


def table(known=4, newcomers=3):
    return PeerTable(PeerTableConfig(status_interval=2.0, suspect_after=3, offline_after=6, forget_after=20,
                                     max_known=known, max_newcomers=newcomers), "me")


def test_newcomer_flood_never_evicts_known_and_is_refused_when_pool_is_alive():
    t = table()
    for i in range(4):
        t.observe(st(f"K{i}"), 0.0, known=True)
    for i in range(1000):
        t.observe(st(f"X{i}"), 0.001 * i, known=False)
    assert len(t) == 7 and t.newcomers == 3
    assert all(t.get(f"K{i}") is not None for i in range(4))
    assert t.refused["newcomer"] == 997
    assert {s.peer_id for s in t.candidates("m", 1.0)} >= {"K0", "K1", "K2", "K3"}


def test_silent_newcomers_make_room_and_speaking_ones_stay():
    t = table(newcomers=2)
    t.observe(st("H"), 0.0, known=False)     # honest newcomer, keeps speaking
    t.observe(st("X0"), 0.0, known=False)    # a fresh key that never speaks again
    assert t.observe(st("X1"), 1.0, known=False) == []  # pool full, nobody silent
    t.observe(st("H", seq=2), 6.5, known=False)
    ev = t.observe(st("X2"), 7.0, known=False)  # X0 silent 7 s > suspect (6 s): replaced
    assert [e.kind for e in ev] == ["forgotten", "joined"] and ev[0].peer_id == "X0"
    assert t.get("H") is not None and t.newcomers == 2


def test_newcomer_promoted_when_known():
    t = table()
    t.observe(st("N"), 0.0, known=False)
    assert t.get("N").newcomer and t.newcomers == 1
    t.observe(st("N", seq=2), 1.0, known=True)
    assert not t.get("N").newcomer and t.newcomers == 0


def test_full_known_part_replaces_only_dead_entries():
    t = table(known=2)
    t.observe(st("A"), 0.0)
    t.observe(st("B"), 0.0)
    assert t.observe(st("C"), 1.0) == [] and t.refused["known"] == 1
    t.observe(st("B", seq=2), 10.0)
    ev = t.observe(st("C"), 13.0)             # A offline by silence: replaced
    assert [(e.kind, e.peer_id) for e in ev] == [("forgotten", "A"), ("joined", "C")]


def test_touch_keeps_alive_and_recovers():
    t = table()
    t.observe(st("A"), 0.0)
    for now in (4.0, 8.0, 12.0, 16.0):
        t.touch("A", now)
        assert t.sweep(now + 1) == []
    assert t.state_at(t.get("A"), 17.0) is PeerState.ALIVE
    assert [e.kind for e in t.sweep(100.0)] == ["forgotten"]
    assert t.touch("A", 101.0) == []
    t.observe(st("B"), 110.0)
    t.mark_offline("B")
    assert [e.kind for e in t.touch("B", 111.0)] == ["recovered"]


@settings(max_examples=200, deadline=None)
@given(hs.lists(hs.tuples(hs.integers(0, 40), hs.booleans(), hs.floats(0, 5)), max_size=300))
def test_bounds_hold_for_any_sequence(ops):
    t = table()
    now = 0.0
    for pid, known, dt in ops:
        now += dt
        t.observe(st(f"P{pid}", seq=int(now * 10) + 1), now, known=known)
        if pid % 7 == 0:
            t.sweep(now)
        assert t.newcomers <= 3 and len(t) - t.newcomers <= 4
        assert t.newcomers == sum(1 for e in t if e.newcomer)
