from wwwserve_p2p.core.peers import PeerState, PeerTable, PeerTableConfig
from wwwserve_p2p.core.types import LoadSnapshot, PeerStatus


def st(pid="B", inc=1, seq=1, models=("m",), accepting=True):
    return PeerStatus(pid, inc, seq, models, LoadSnapshot(0, 0, 2), accepting)


def table():
    return PeerTable(PeerTableConfig(status_interval=2.0, suspect_after=3, offline_after=6, forget_after=20), "A")


def test_join_update_and_stale():
    t = table()
    assert [e.kind for e in t.observe(st(seq=1), 0.0)] == ["joined"]
    assert t.observe(st(seq=1), 0.5) == []          # duplicate
    assert t.observe(st(seq=2), 1.0) == []          # fresher, same incarnation
    assert t.get("B").status.seq == 2
    assert t.observe(st(seq=1), 1.5) == []          # stale ignored
    assert t.get("B").last_seen == 1.0
    assert t.observe(st("A"), 1.0) == []            # ourselves ignored


def test_suspect_offline_forget_and_rejoin():
    t = table()
    t.observe(st(seq=5), 0.0)
    assert t.sweep(5.9) == []
    assert [e.kind for e in t.sweep(6.0)] == ["suspect"]
    assert t.candidates("m", 6.0) == []
    assert [e.kind for e in t.sweep(12.0)] == ["offline"]
    assert t.sweep(13.0) == []
    # a restarted node: new incarnation, low seq, replaces the entry
    assert [e.kind for e in t.observe(st(inc=2, seq=1), 14.0)] == ["rejoined"]
    assert t.get("B").state is PeerState.ALIVE and [s.peer_id for s in t.candidates("m", 14.0)] == ["B"]
    assert [e.kind for e in t.sweep(60.0)] == ["forgotten"]
    assert len(t) == 0


def test_recovered_and_candidate_filters():
    t = table()
    t.observe(st("B", seq=1), 0.0)
    t.observe(st("C", seq=1, accepting=False), 0.0)
    t.observe(st("D", seq=1, models=("x",)), 0.0)
    assert [s.peer_id for s in t.candidates("m", 1.0)] == ["B"]
    assert [s.peer_id for s in t.candidates("m", 1.0, exclude=["B"])] == []
    assert t.network_models(1.0) == {"m": ["B", "C"], "x": ["D"]}
    # silence alone excludes a peer even before a sweep runs
    assert t.candidates("m", 6.5) == []
    t.sweep(6.5)
    assert [e.kind for e in t.observe(st("B", seq=2), 7.0)] == ["recovered"]
    assert t.mark_offline("B")[0].kind == "offline"
    assert t.candidates("m", 7.0) == []
    assert t.network_models(7.0) == {}  # C and D silent for 3.5 intervals: suspect
    assert t.counts(7.0) == {"alive": 0, "suspect": 2, "offline": 1}
