"""Judges for duels on the echo task (in-memory tests and virtual-time benchmarks), where the
best answer is the prompt itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Judgement:
    """A judge's verdict: ``choice`` is ``"first"``, ``"second"`` or ``"abstain"``."""

    choice: str
    detail: str = ""


class OverlapJudge:
    """Prefers the answer whose words are more often prompt words (share of its words, 0-1);
    abstains on equal scores. ``detail`` gives both scores."""

    name = "overlap"

    async def judge(self, prompt: str, first: str, second: str) -> Judgement:
        words = set(prompt.split())

        def score(t: str) -> float:
            ws = t.split()
            return sum(w in words for w in ws) / max(1, len(ws))
        a, b = score(first), score(second)
        return Judgement("abstain" if a == b else "first" if a > b else "second", f"{a:.3f} vs {b:.3f}")


__all__ = ["Judgement", "OverlapJudge"]
