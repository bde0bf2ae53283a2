"""Pure helpers of duel judging: parsing an LLM judge's verdict, comparing two scores.

No I/O, no clocks, no randomness (DESIGN §2): the judges that call models live in
:mod:`wwwserve_p2p.judging`.

Verdicts are positional: ``"first"`` / ``"second"`` name the answer shown first / second to
the judge (``"Answer A"`` / ``"Answer B"`` in the prompt); ``"abstain"`` means no preference
(a tie, a refusal, or text we cannot read with confidence). The node maps positions back to
executors; judges never learn who wrote which answer.
"""

from __future__ import annotations

import math
import re

FIRST = "first"
SECOND = "second"
ABSTAIN = "abstain"
#: The three possible verdicts.
VERDICTS: tuple[str, ...] = (FIRST, SECOND, ABSTAIN)

#: Only this many characters from each end of a judge's output are parsed (verdicts sit at
#: the start or the end; bounds the work on pathological outputs).
MAX_PARSE_CHARS = 4000

_TIE = "tie"

# -- level 1: MT-Bench's bracketed verdict "[[A]]" / "[[B]]" / "[[C]]" (tie) ----------------
_BRACKET = re.compile(r"\[\[\s*(A|B|C|TIE|1|2)\s*\]\]", re.IGNORECASE)

# -- level 2: a labelled verdict: "Verdict: B", "Final verdict - Answer A", "winner is the first"
_SIDE_WORD = (r"(?:(?:answer|assistant|response|option|output)\s*)?"
              r"(?P<side>(?:a\s+)?tie|neither|both|[AB]|[12]|first|second|C)\b")
_LABEL = re.compile(
    r"(?:(?:final\s+)?(?:verdict|decision|winner|choice|judge?ment|result|preference|"
    r"better\s+(?:answer|response|one)|best\s+(?:answer|response)|preferred\s+(?:answer|response))"
    r"\s*(?:is\s*:?|:|=|-)|(?:final\s+)?answer\s*:)"
    r"\s*[\*\"'(\[]*\s*(?:the\s+)?" + _SIDE_WORD,
    re.IGNORECASE)

# -- level 3: comparative phrases --------------------------------------------------------------
_NAMED = (r"(?:answer|assistant|response|option|output)\s*(?P<l>[AB12])\b"   # any case letter
          r"(?:'s\s+(?:answer|response))?")
_BARE = r"(?<![\w'])(?P<u>[AB])(?:'s\s+(?:answer|response))?"               # upper-case only
_ORD = r"(?:the\s+)?(?P<o>first|second)(?:\s+(?:answer|response|one|assistant|option|output))?"
_SUBJ = rf"(?:{_NAMED}|{_ORD}|{_BARE})"
_BETTER = (r"(?:better|superior|preferable|stronger|more\s+\w+|best|the\s+winner|"
           r"the\s+better\s+\w+|the\s+stronger\s+\w+)")
_WORSE = r"(?:worse|inferior|weaker|less\s+\w+|the\s+worst|the\s+loser|the\s+weaker\s+\w+)"
_COMPARE = re.compile(
    _SUBJ + r"\s+(?:"
    r"(?:is|was|seems|appears|looks|would\s+be|is\s+clearly)(?P<neg1>n't)?\s+(?:to\s+be\s+)?"
    r"(?P<neg>not\s+|never\s+)?"
    r"(?:(?:much|clearly|slightly|far|definitely|significantly|somewhat|a\s+bit|overall)\s+)?"
    rf"(?:(?P<better>{_BETTER})|(?P<worse>{_WORSE}))"
    r"|(?P<win>wins|won|prevails)|(?P<lose>loses|lost))\b",
    re.IGNORECASE)
# the letter-only alternative must stay case-sensitive: "a is better" is too likely a typo
_BARE_CHECK = re.compile(r"[AB]")
_PREFER = re.compile(
    r"(?P<neg>(?:do\s+not|don't|doesn't|does\s+not|would\s+not|wouldn't|cannot|can't)\s+)?"
    r"(?:prefer(?:s|red)?|choose|chose|pick(?:ed)?|select(?:ed)?|go\s+with|vote\s+for|favou?r)\s+"
    r"(?:the\s+)?(?:(?:answer|assistant|response|option|output)\s*(?P<l>[AB12])\b|"
    r"(?P<o>first|second)\b|(?P<u>[AB])\b)",
    re.IGNORECASE)
_TIE_PHRASE = re.compile(
    r"\b(?:tie[ds]?|a\s+draw|equally\s+(?:good|bad|well|poor|helpful|strong|weak|valid|"
    r"correct|accurate|matched)|both\s+(?:answers\s+|responses\s+)?(?:are\s+)?(?:equally|equal)|"
    r"of\s+(?:equal|the\s+same)\s+quality|neither\s+(?:answer\s+|response\s+|one\s+)?is\s+better|"
    r"no\s+(?:clear\s+)?winner|can\s*not\s+decide|can't\s+decide|too\s+close\s+to\s+call)\b",
    re.IGNORECASE)

# -- level 4: the whole output is just the choice: "A", "(B)", "first", "Answer A." ---------
_ALONE = re.compile(
    r"^[\s\*\"'(\[]*(?:(?:answer|assistant|response|option)\s*)?(?P<side>[AB]|[12]|first|second|"
    r"tie|C)[\s\*\"')\].!:]*$", re.IGNORECASE)
_LEADING = re.compile(r"^[\s\*\"'(\[]*(?P<side>[AB])(?:[\)\].:]|\s*\n)")


def _side(token: str | None) -> str | None:
    if not token:
        return None
    t = token.strip().lower()
    if t.endswith("tie"):
        return _TIE
    if t in ("a", "1", "first"):
        return FIRST
    if t in ("b", "2", "second"):
        return SECOND
    if t in ("c", "tie", "neither", "both"):
        return _TIE
    return None


def _other(side: str) -> str:
    return SECOND if side == FIRST else FIRST


def _decide(signals: list[str]) -> str | None:
    """None without signals; the unanimous signal; else abstain (a contradiction)."""
    if not signals:
        return None
    kinds = set(signals)
    if len(kinds) > 1:
        return ABSTAIN
    only = kinds.pop()
    return ABSTAIN if only == _TIE else only


def _compare_signals(text: str) -> list[str]:
    out: list[str] = []
    for m in _COMPARE.finditer(text):
        if m.group("u") is not None and not _BARE_CHECK.fullmatch(m.group("u")):
            continue  # a lower-case bare "a"/"b" is an article or a typo, not a verdict
        side = _side(m.group("l") or m.group("o") or m.group("u"))
        if side is None:
            continue
        if m.group("neg") or m.group("neg1"):
            out.append(_TIE)  # "A is not better": no usable preference
        elif m.group("worse") or m.group("lose"):
            out.append(_other(side))
        else:
            out.append(side)
    for m in _PREFER.finditer(text):
        if m.group("u") is not None and not _BARE_CHECK.fullmatch(m.group("u")):
            continue
        side = _side(m.group("l") or m.group("o") or m.group("u"))
        if side is not None:
            out.append(_TIE if m.group("neg") else side)
    return out


def parse_verdict(text: str) -> str:
    """Read a judge model's output as ``"first"``, ``"second"`` or ``"abstain"``. Never raises.

    The output may contain chatter around the verdict. Signals are read at four levels, and
    the highest level that has any signal decides:

    1. MT-Bench's bracketed format (Zheng et al. 2023, "Judging LLM-as-a-Judge with MT-Bench
       and Chatbot Arena", NeurIPS 2023): ``[[A]]``, ``[[B]]``, ``[[C]]`` (tie).
    2. A labelled verdict: ``"Verdict: B"``, ``"Final verdict - Answer A"``, ``"The better
       answer is the second"``, ``"Winner: tie"``.
    3. Comparative phrases: ``"Answer A is better"``, ``"the second response is clearly
       stronger"``, ``"B is worse"`` (→ first), ``"I prefer the second answer"``,
       ``"I would choose A"``, and tie phrases (``"tie"``, ``"both equally"``,
       ``"neither is better"``). A negated preference (``"A is not better"``,
       ``"I don't prefer B"``) counts as no preference.
    4. The whole output is the choice (``"A"``, ``"(B)"``, ``"second"``, ``"Answer A."``) or
       starts with a letter and a delimiter (``"A) because..."``, ``"B.\\n..."``).

    Within the deciding level the signals must agree: answers named on both sides, or a side
    and a tie, give ``"abstain"``; so does a side at a lower level that contradicts the
    deciding level's side (``"[[A]] ... Answer B is better"``). A tie, or no readable
    verdict, gives ``"abstain"``. Bare letters count only in upper case (``"a better
    answer"`` is an article, not a vote). Only the first and the last
    :data:`MAX_PARSE_CHARS` characters are read.

    :param text: the judge's raw output (any string).
    :returns: one of :data:`VERDICTS`.
    """
    if not isinstance(text, str):
        return ABSTAIN
    if len(text) > 2 * MAX_PARSE_CHARS:
        text = text[:MAX_PARSE_CHARS] + "\n" + text[-MAX_PARSE_CHARS:]
    levels: list[list[str]] = [
        [s for s in (_side(m.group(1)) for m in _BRACKET.finditer(text)) if s],
        [s for s in (_side(m.group("side")) for m in _LABEL.finditer(text)) if s],
        _compare_signals(text) + [_TIE for _ in _TIE_PHRASE.finditer(text)],
    ]
    alone = _ALONE.match(text) or _LEADING.match(text)
    levels.append([s] if alone and (s := _side(alone.group("side"))) else [])
    for i, signals in enumerate(levels):
        verdict = _decide(signals)
        if verdict is None:
            continue
        if verdict in (FIRST, SECOND):
            lower = {s for lvl in levels[i + 1:] for s in lvl if s in (FIRST, SECOND)}
            if _other(verdict) in lower:
                return ABSTAIN
        return verdict
    return ABSTAIN


def compare_scores(first: float | None, second: float | None, margin: float) -> str:
    """The verdict of a score comparison: the higher score wins unless within ``margin``.

    :param first: score of the first answer (higher is better; e.g. mean log-probability in
        nats per token); ``None``, NaN or ``-inf`` means unscorable.
    :param second: likewise for the second answer.
    :param margin: ``>= 0``; ``|first - second| < margin`` (or equal scores) gives
        ``"abstain"``.
    :returns: ``"first"``, ``"second"`` or ``"abstain"`` (also when either is unscorable).
    """
    def ok(x: float | None) -> bool:
        return x is not None and math.isfinite(x)

    if not ok(first) or not ok(second):
        return ABSTAIN
    assert first is not None and second is not None
    diff = first - second
    if diff == 0 or abs(diff) < margin:
        return ABSTAIN
    return FIRST if diff > 0 else SECOND
