"""core.judging: reading an LLM judge's verdict out of chatter, and comparing two scores."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wwwserve_p2p.core.judging import (ABSTAIN, FIRST, MAX_PARSE_CHARS, SECOND, VERDICTS,
                                       compare_scores, parse_verdict)

CASES = [
    # MT-Bench's bracketed format
    ("[[A]]", FIRST),
    ("[[B]]", SECOND),
    ("[[C]]", ABSTAIN),
    ("[[ b ]]", SECOND),
    ("Answer A covers the question and B rambles. Final verdict: [[A]]", FIRST),
    ("[[B]]\nAnswer B is more accurate.", SECOND),
    # labelled verdicts
    ("Verdict: B", SECOND),
    ("Final verdict - Answer A", FIRST),
    ("The better answer is the second.", SECOND),
    ("My decision is a tie.", ABSTAIN),
    ("Winner: first", FIRST),
    # comparative phrases with chatter
    ("Answer A is better", FIRST),
    ("After careful thought, I think answer b is clearly better than answer a.", SECOND),
    ("I prefer the second answer", SECOND),
    ("The first response is much more relevant to the question.", FIRST),
    ("B is worse than A.", FIRST),
    ("Assistant B wins.", SECOND),
    ("I would choose A.", FIRST),
    ("Assistant A's answer is more helpful.", FIRST),
    # bare choices
    ("A", FIRST),
    ("B", SECOND),
    ("(B)", SECOND),
    ("second", SECOND),
    ("Answer A.", FIRST),
    ("A) because it stays on topic", FIRST),
    ("B.\nThe other one is gibberish.", SECOND),
    # ties
    ("tie", ABSTAIN),
    ("Both are equally good.", ABSTAIN),
    ("Neither answer is better than the other.", ABSTAIN),
    ("It's too close to call.", ABSTAIN),
    # contradictions
    ("[[A]] ... on reflection [[B]]", ABSTAIN),
    ("Answer A is better. No wait, answer B is better.", ABSTAIN),
    ("Verdict: [[A]]. However, answer B is better.", ABSTAIN),
    ("Output [[A]] if assistant A is better, [[B]] if assistant B is better", ABSTAIN),
    ("A is better, but it's a tie overall.", ABSTAIN),
    # negations and non-verdicts
    ("A is not better than B.", ABSTAIN),
    ("I don't prefer B.", ABSTAIN),
    ("A better answer would mention Rome.", ABSTAIN),
    ("A more detailed answer is needed.", ABSTAIN),
    ("ROMEO: What light through yonder window breaks?", ABSTAIN),
    ("", ABSTAIN),
    ("   \n ", ABSTAIN),
]


@pytest.mark.parametrize("text, expected", CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


def test_parse_verdict_non_string_and_huge_inputs():
    assert parse_verdict(None) == ABSTAIN  # type: ignore[arg-type]
    huge = "[[B]] " + "blah " * (MAX_PARSE_CHARS * 2)
    assert parse_verdict(huge) == SECOND  # the start is read
    assert parse_verdict("blah " * (MAX_PARSE_CHARS * 2) + " Verdict: A") == FIRST  # and the end


_FRAGMENTS = ["[[A]]", "[[B]]", "[[C]]", "[[", "]]", "A", "B", "a", "b", "answer", "Answer A",
              "assistant B", "is", "not", "better", "worse", "tie", "Verdict:", ":", "the first",
              "second", "prefer", "I don't", "both", "equally", "wins", "(", ")", "\n", ".",
              "'s answer", "more helpful", "neither", "choose"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300),
                 st.lists(st.sampled_from(_FRAGMENTS), max_size=25).map(" ".join)))
def test_parse_verdict_total(text):
    assert parse_verdict(text) in VERDICTS


_MIRROR = {"[[A]]": "[[B]]", "A": "B", "Answer A": "Answer B", "assistant A": "assistant B",
           "the first": "the second", "first": "second", "1": "2"}
_MIRROR.update({v: k for k, v in list(_MIRROR.items())})
_NEUTRAL = ["[[C]]", "is", "not", "better", "worse", "tie", "Verdict:", ":", "prefer",
            "I don't", "both", "equally", "wins", "(", ")", "\n", ".", "more helpful", "choose",
            "answer", "the", "clearly"]


@given(st.lists(st.sampled_from(sorted(_MIRROR) + _NEUTRAL), max_size=12))
def test_mirroring_the_answers_mirrors_the_verdict(words):
    """Swapping the names of the two answers swaps a side verdict and keeps an abstention."""
    mirror = {FIRST: SECOND, SECOND: FIRST, ABSTAIN: ABSTAIN}
    text = " ".join(words)
    mirrored = " ".join(_MIRROR.get(w, w) for w in words)
    assert parse_verdict(mirrored) == mirror[parse_verdict(text)]


def test_compare_scores():
    assert compare_scores(-1.0, -2.0, 0.05) == FIRST
    assert compare_scores(-2.0, -1.0, 0.05) == SECOND
    assert compare_scores(-1.0, -1.04, 0.05) == ABSTAIN
    assert compare_scores(-1.0, -1.0, 0.0) == ABSTAIN
    assert compare_scores(None, -1.0, 0.05) == ABSTAIN
    assert compare_scores(-1.0, -math.inf, 0.05) == ABSTAIN
    assert compare_scores(math.nan, -1.0, 0.05) == ABSTAIN
