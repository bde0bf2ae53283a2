from collections import Counter

import pytest
from hypothesis import given, strategies as st

from wwwserve_p2p.core.policy import OffloadPolicy, Route, decide_accept, decide_route
from wwwserve_p2p.core.selection import least_loaded, select_candidates, uniform, weighted_order
from wwwserve_p2p.core.types import LoadSnapshot


def test_uniform_is_deterministic_and_in_range():
    assert uniform(1, "a") == uniform(1, "a")
    assert uniform(1, "a") != uniform(2, "a")
    assert all(0 < uniform(s) < 1 for s in range(1000))


def test_first_pick_is_proportional_to_stake():
    c = Counter(select_candidates({"a": 1, "b": 3}, 1, seed, 0.0)[0] for seed in range(8000))
    assert abs(c["b"] / 8000 - 0.75) < 0.03


def test_exploration_share_gives_newcomers_slots():
    c = Counter(select_candidates({"a": 5, "new": 0}, 1, seed, 0.2)[0] for seed in range(5000))
    assert abs(c["new"] / 5000 - 0.2) < 0.03
    # without exploration a zero-stake peer is only used when no staked peer is left
    assert select_candidates({"a": 5, "new": 0}, 2, 7, 0.0) == ["a", "new"]


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers(0, 10**9), max_size=12),
       st.integers(0, 20), st.integers(), st.floats(0, 1))
def test_selection_properties(stakes, n, seed, share):
    out = select_candidates(stakes, n, seed, share)
    assert len(out) == min(n, len(stakes))
    assert len(set(out)) == len(out)
    assert set(out) <= set(stakes)
    assert out == select_candidates(stakes, n, seed, share)


def test_weighted_order_skips_zero_and_least_loaded():
    assert set(weighted_order({"a": 0, "b": 2}, 1)) == {"b"}
    assert least_loaded([("x", 0.5), ("a", 0.5), ("b", 0.1)]) == "b"
    assert least_loaded([]) is None


def test_route_decision_follows_paper_semantics():
    p = OffloadPolicy(target_load=0.5, offload_frequency=0.3, queue_frequency=0.5)
    assert decide_route(0.2, p, True, 0.9, 0.9) is Route.LOCAL
    assert decide_route(0.8, p, True, 0.1, 0.9) is Route.OFFLOAD
    assert decide_route(0.8, p, False, 0.1, 0.4) is Route.QUEUE
    assert decide_route(0.8, p, True, 0.5, 0.4) is Route.QUEUE
    assert decide_route(0.8, p, True, 0.5, 0.6) is Route.RETRY
    assert decide_route(0.8, OffloadPolicy(participate=False), True, 0.0, 0.0) is Route.QUEUE


def test_accept_decision():
    p = OffloadPolicy(accept_frequency=0.5, max_delegated=2)
    idle = LoadSnapshot(0, 0, 2)
    assert decide_accept(idle, 0, True, p, 0.1) == (True, "")
    assert decide_accept(idle, 0, True, p, 0.7)[0] is False
    assert decide_accept(idle, 2, True, p, 0.1) == (False, "max delegated concurrency reached")
    assert decide_accept(LoadSnapshot(2, 0, 2), 0, True, p, 0.1) == (False, "overloaded")
    assert decide_accept(LoadSnapshot(1, 1, 4), 0, True, p, 0.1) == (False, "overloaded")
    assert decide_accept(idle, 0, False, p, 0.1) == (False, "model not served")


def test_policy_validates():
    with pytest.raises(ValueError):
        OffloadPolicy(accept_frequency=1.5)
    with pytest.raises(ValueError):
        OffloadPolicy(stake=-1)


def test_percentile_interpolates_like_numpy():
    from wwwserve_p2p.core.stats import percentile
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0], 100) == 2.0 and percentile([5.0], 99) == 5.0
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_stake_target_fixed_and_paper_auto_policy():
    from wwwserve_p2p.core.policy import stake_target
    from wwwserve_p2p.core.types import LoadSnapshot

    fixed = OffloadPolicy(stake=3_000_000)
    assert stake_target(fixed, LoadSnapshot(running=4, capacity=4), 0, 1.0) == 3_000_000
    assert stake_target(OffloadPolicy(participate=False), LoadSnapshot(capacity=4), 5, 1.0) == 0
    auto = OffloadPolicy(stake=4_000_000, stake_policy="auto")  # unit = 1 credit, 0..4 units
    idle, busy, half = LoadSnapshot(capacity=4), LoadSnapshot(running=4, capacity=4), LoadSnapshot(running=2, capacity=4)
    # moves at most 2 units per second toward round(4 x idle fraction) units
    assert stake_target(auto, idle, 0, 1.0) == 2_000_000
    assert stake_target(auto, idle, 2_000_000, 1.0) == 4_000_000
    assert stake_target(auto, idle, 0, 0.5) == 1_000_000
    assert stake_target(auto, busy, 4_000_000, 1.0) == 2_000_000
    assert stake_target(auto, busy, 2_000_000, 5.0) == 0
    assert stake_target(auto, half, 0, 10.0) == 2_000_000
    with pytest.raises(ValueError, match="stake_policy"):
        OffloadPolicy(stake_policy="greedy")


# ------------------------------------------------------------ baseline strategies (issue 5)
from wwwserve_p2p.core.selection import order_candidates  # noqa: E402


def test_random_strategy_ignores_stake():
    stakes = {"a": 1_000_000, "b": 0, "c": 0, "d": 0}
    firsts = [order_candidates("random", stakes, {}, 1, seed)[0] for seed in range(400)]
    for p in stakes:
        assert 60 <= firsts.count(p) <= 140, (p, firsts.count(p))


def test_p2c_puts_the_less_loaded_of_two_first():
    stakes = {p: 1 for p in "abcdef"}
    loads = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.7, "e": 0.3, "f": 0.2}
    for seed in range(50):
        order = order_candidates("p2c", stakes, loads, 3, seed)
        assert len(order) == 3 and len(set(order)) == 3
        assert loads[order[0]] <= loads[order[1]]
    firsts = [order_candidates("p2c", stakes, loads, 1, s)[0] for s in range(300)]
    assert firsts.count("a") == 0  # the most loaded never wins a pair


def test_stake_strategy_is_select_candidates_and_unknown_is_refused():
    stakes = {"a": 5, "b": 1, "c": 0}
    assert order_candidates("stake", stakes, {}, 3, 7) == select_candidates(stakes, 3, 7)
    with pytest.raises(ValueError):
        order_candidates("nope", stakes, {}, 1, 0)
    with pytest.raises(ValueError):
        OffloadPolicy(selection="nope")
