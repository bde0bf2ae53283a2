"""Request workloads for benchmarks: the Azure LLM inference trace and synthetic Poisson load.

A workload is a *stream* per node: a list of :class:`TraceRequest` sorted by ``arrival_s``
(seconds from the start of the run), each with a prompt length and an answer length in
tokens. Everything here is a pure function of its arguments (and ``seed``); the only I/O is
reading a CSV in :func:`load_azure_trace`.

- :func:`load_azure_trace`: the Azure LLM inference trace 2023 (``TIMESTAMP,ContextTokens,
  GeneratedTokens``; Patel et al., "Splitwise", ISCA 2024; CC-BY 4.0), or any CSV with
  these columns.
- :func:`node_windows`: per-node windows of one trace at different offsets (as in the WWW.Serve
  paper's evaluation), so nodes are busy at different times.
- :func:`poisson_antiphase`: Poisson arrivals, half of the nodes busy in the first half of the
  run and quiet in the second, the other half the opposite.
- :func:`synthetic_prompt` / :func:`to_request`: turn a :class:`TraceRequest` into a
  :class:`~wwwserve_p2p.core.types.GenerationRequest` whose prompt has exactly
  ``prompt_tokens`` words (the token count of
  :class:`~wwwserve_p2p.sim.executor.SimulatedExecutor`).
"""

from __future__ import annotations

import bisect
import csv
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..core.types import GenerationRequest
from ..errors import ConfigError

#: Columns required in a trace CSV.
TRACE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")

_TS = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                 r"\s*(?:Z|[+-]00:?00)?\s*$")


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a workload.

    :param arrival_s: arrival time, seconds from the start of the stream (>= 0).
    :param prompt_tokens: prompt length in tokens.
    :param output_tokens: answer length in tokens (use as ``max_tokens``).
    """

    arrival_s: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class LogNormalTokens:
    """A token-count distribution: ``round(exp(N(log(median), sigma)))`` clipped to [lo, hi].

    :data:`CONV_PROMPT_TOKENS` and :data:`CONV_OUTPUT_TOKENS` are fitted (geometric mean and
    standard deviation of the log) to the Azure 2023 conversation trace: prompts median ~760
    (mean 1,155, max 14,050), answers median ~151 (mean 211, max 1,000).
    """

    median: float
    sigma: float
    lo: int = 1
    hi: int = 1 << 20

    def __post_init__(self) -> None:
        if not (self.median > 0 and self.sigma >= 0 and 1 <= self.lo <= self.hi):
            raise ConfigError(f"invalid token distribution {self!r}: need median > 0, "
                              "sigma >= 0, 1 <= lo <= hi")

    def sample(self, rng: random.Random) -> int:
        """One token count drawn with ``rng``."""
        x = round(math.exp(rng.gauss(math.log(self.median), self.sigma)))
        return max(self.lo, min(self.hi, x))


CONV_PROMPT_TOKENS = LogNormalTokens(median=760.0, sigma=0.99, lo=1, hi=8192)
CONV_OUTPUT_TOKENS = LogNormalTokens(median=151.0, sigma=0.86, lo=1, hi=1000)

TokenSpec = int | LogNormalTokens


def _parse_time(text: str) -> tuple[int, float]:
    """``(whole seconds, fraction)`` of a number of seconds, or of ``YYYY-MM-DD
    HH:MM:SS[.fraction]`` (any number of fraction digits; read as UTC). Kept apart so that
    differences of date-times stay exact to the microsecond."""
    try:
        return 0, float(text)
    except ValueError:
        pass
    m = _TS.match(text)
    if not m:
        raise ValueError(f"unrecognised timestamp {text!r}")
    y, mo, d, hh, mm, ss = (int(g) for g in m.groups()[:6])
    frac = float("0." + m.group(7)) if m.group(7) else 0.0
    if hh > 23 or mm > 59 or ss > 60:
        raise ValueError(f"invalid time of day in {text!r}")
    days = date(y, mo, d).toordinal()
    return days * 86400 + hh * 3600 + mm * 60 + ss, frac


def load_azure_trace(path: str | Path, limit: int | None = None) -> list[TraceRequest]:
    """Read a trace CSV with columns ``TIMESTAMP, ContextTokens, GeneratedTokens`` (others are
    ignored; column names are case-insensitive).

    ``TIMESTAMP`` is a date-time ``YYYY-MM-DD HH:MM:SS.fffffff`` (as in the Azure LLM
    inference traces) or a number of seconds. Arrivals are rebased to the earliest row (the
    first request arrives at 0.0) and the result is sorted by arrival. Token counts are kept
    as in the file (the conversation trace has prompts 2-14,050 and answers 7-1,000 tokens).

    :param limit: read at most this many data rows (the first ones of the file).
    :raises ConfigError: the file is missing or unreadable, lacks a column (the message names
        the path and the missing and found columns), has a malformed row (path and line), or
        has no data row.
    """
    path = Path(path)
    try:
        f = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read trace {path}: {exc.strerror or exc}") from exc
    rows: list[tuple[tuple[int, float], int, int]] = []
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise ConfigError(f"trace {path} is empty (expected a header with columns "
                              f"{', '.join(TRACE_COLUMNS)})") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"trace {path} is not a CSV file: {exc}") from exc
        names = [h.strip().lstrip("\ufeff").lower() for h in header]
        missing = [c for c in TRACE_COLUMNS if c.lower() not in names]
        if missing:
            raise ConfigError(f"trace {path} lacks column(s) {', '.join(missing)}; found: "
                              f"{', '.join(h.strip() for h in header) or '(none)'}")
        it, ic, ig = (names.index(c.lower()) for c in TRACE_COLUMNS)
        try:
            for row in reader:
                if limit is not None and len(rows) >= limit:
                    break
                if not row or all(not c.strip() for c in row):
                    continue
                try:
                    t = _parse_time(row[it])
                    p, g = int(row[ic]), int(row[ig])
                    if p < 0 or g < 0 or not math.isfinite(t[1]):
                        raise ValueError("negative token count or non-finite time")
                except (ValueError, IndexError) as exc:
                    raise ConfigError(f"trace {path}, line {reader.line_num}: malformed row "
                                      f"{row!r}: {exc}") from None
                rows.append((t, p, g))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"trace {path} is not a valid CSV file: {exc}") from exc
    if not rows:
        raise ConfigError(f"trace {path} has no data rows")
    rows.sort(key=lambda r: r[0][0] + r[0][1])
    (w0, f0) = min(r[0] for r in rows)
    return [TraceRequest(max(0.0, (w - w0) + (f - f0)), p, g) for (w, f), p, g in rows]


def _clip(n: int, cap: int | None) -> int:
    return max(1, n if cap is None else min(n, cap))


def node_windows(trace: Sequence[TraceRequest], n_nodes: int, window_s: float,
                 offsets_s: Sequence[float] | None = None, *, rate_scale: float = 1.0,
                 max_prompt_tokens: int | None = None, max_output_tokens: int | None = None,
                 seed: int = 0) -> list[list[TraceRequest]]:
    """Per-node streams cut from one trace at different offsets.

    The trace is treated as periodic with period ``P = span + mean gap`` (``span`` = last
    arrival - first), so a window may wrap around its end. Node ``i`` gets the requests whose
    arrival lies in ``[offsets_s[i], offsets_s[i] + window_s * max(1, rate_scale))`` (modulo
    ``P``), rebased so the window starts at 0.

    :param trace: requests sorted by arrival (e.g. from :func:`load_azure_trace`).
    :param window_s: length of each node's stream, seconds.
    :param offsets_s: start of each node's window in the trace, seconds (default: spread evenly,
        ``i * P / n_nodes``).
    :param rate_scale: > 0. Below 1 the stream is thinned: each request is kept with
        probability ``rate_scale`` (seeded per node). Above 1 time is compressed: a window of
        ``window_s * rate_scale`` trace seconds is replayed in ``window_s`` seconds.
    :param max_prompt_tokens: clip prompt lengths to this (tokens); None keeps them.
    :param max_output_tokens: clip answer lengths to this (tokens); None keeps them.
        Token counts are also raised to at least 1.
    :returns: ``n_nodes`` lists of :class:`TraceRequest`, each sorted by arrival, arrivals in
        ``[0, window_s)``.
    :raises ConfigError: empty trace, ``n_nodes < 1``, ``window_s <= 0``, a window longer than
        the trace period, ``rate_scale <= 0``, or ``offsets_s`` of the wrong length.
    """
    if not trace:
        raise ConfigError("node_windows: the trace is empty")
    if int(n_nodes) < 1:
        raise ConfigError(f"n_nodes must be >= 1, got {n_nodes}")
    n_nodes = int(n_nodes)
    if not window_s > 0:
        raise ConfigError(f"window_s must be > 0, got {window_s}")
    if not (rate_scale > 0 and math.isfinite(rate_scale)):
        raise ConfigError(f"rate_scale must be > 0, got {rate_scale}")
    for name, cap in (("max_prompt_tokens", max_prompt_tokens),
                      ("max_output_tokens", max_output_tokens)):
        if cap is not None and cap < 1:
            raise ConfigError(f"{name} must be >= 1, got {cap}")
    arrivals = [r.arrival_s for r in trace]
    if any(b < a for a, b in zip(arrivals, arrivals[1:])):
        raise ConfigError("node_windows: the trace must be sorted by arrival_s")
    first, span = arrivals[0], arrivals[-1] - arrivals[0]
    period = span + (span / (len(trace) - 1) if len(trace) > 1 and span > 0 else 1.0)
    compress = max(1.0, rate_scale)
    length = window_s * compress
    if length > period:
        raise ConfigError(f"window of {length:g} trace seconds is longer than the trace "
                          f"({period:g} s); lower window_s or rate_scale")
    if offsets_s is None:
        offsets_s = [i * period / n_nodes for i in range(n_nodes)]
    offsets_s = [float(o) for o in offsets_s]
    if len(offsets_s) != n_nodes:
        raise ConfigError(f"offsets_s has {len(offsets_s)} entries for {n_nodes} nodes")
    rel = [a - first for a in arrivals]
    streams = []
    for i, off in enumerate(offsets_s):
        rng = random.Random(f"node_windows:{seed}:{i}")
        start = off % period
        picked: list[tuple[float, TraceRequest]] = []
        # [start, start + length) and, when it wraps, [0, start + length - period)
        segments = [(start, min(start + length, period), -start)]
        if start + length > period:
            segments.append((0.0, start + length - period, period - start))
        for lo, hi, shift in segments:
            for k in range(bisect.bisect_left(rel, lo), bisect.bisect_left(rel, hi)):
                picked.append((rel[k] + shift, trace[k]))
        out = []
        for t, r in picked:
            if rate_scale < 1.0 and rng.random() >= rate_scale:
                continue
            out.append(TraceRequest(t / compress, _clip(r.prompt_tokens, max_prompt_tokens),
                                    _clip(r.output_tokens, max_output_tokens)))
        out.sort(key=lambda r: r.arrival_s)
        streams.append(out)
    return streams


def _tokens(spec: TokenSpec, rng: random.Random, what: str) -> int:
    if isinstance(spec, LogNormalTokens):
        return spec.sample(rng)
    if isinstance(spec, int) and not isinstance(spec, bool) and spec >= 1:
        return spec
    raise ConfigError(f"{what} must be an int >= 1 or a LogNormalTokens, got {spec!r}")


def poisson_antiphase(n_nodes: int, duration_s: float, high_rate: float, low_rate: float,
                      seed: int = 0, *, prompt_tokens: TokenSpec = CONV_PROMPT_TOKENS,
                      output_tokens: TokenSpec = CONV_OUTPUT_TOKENS,
                      token_source: Sequence[TraceRequest] | None = None
                      ) -> list[list[TraceRequest]]:
    """Per-node Poisson streams in anti-phase.

    Nodes ``0 .. ceil(n_nodes / 2) - 1`` (the first half of the list) receive ``high_rate``
    requests/s during ``[0, duration_s / 2)`` and ``low_rate`` during
    ``[duration_s / 2, duration_s)``; the other nodes the opposite. Inter-arrival times are
    exponential (a Poisson process per half, independent per node).

    Token counts: drawn from ``prompt_tokens`` / ``output_tokens`` (an ``int`` is a constant, a
    :class:`LogNormalTokens` a distribution; defaults fitted to the Azure conversation trace),
    or, when ``token_source`` is given, ``(prompt_tokens, output_tokens)`` pairs drawn uniformly
    with replacement from it (e.g. a loaded trace; counts raised to at least 1).

    :param duration_s: length of the run, seconds.
    :param high_rate: requests per second in a node's busy half (>= 0).
    :param low_rate: requests per second in its quiet half (>= 0).
    :param seed: every node's stream is a function of ``(seed, node index)`` only.
    :returns: ``n_nodes`` lists sorted by arrival, arrivals in ``[0, duration_s)``.
    :raises ConfigError: ``n_nodes < 1``, ``duration_s <= 0``, a negative rate, an invalid
        token spec, or an empty ``token_source``.
    """
    if int(n_nodes) < 1:
        raise ConfigError(f"n_nodes must be >= 1, got {n_nodes}")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ConfigError(f"duration_s must be > 0, got {duration_s}")
    if not (high_rate >= 0 and low_rate >= 0 and math.isfinite(high_rate)
            and math.isfinite(low_rate)):
        raise ConfigError(f"rates must be finite and >= 0, got {high_rate}, {low_rate}")
    if token_source is not None and not token_source:
        raise ConfigError("token_source is empty")
    n_nodes = int(n_nodes)
    half = duration_s / 2
    first_group = (n_nodes + 1) // 2
    streams = []
    for i in range(n_nodes):
        rng = random.Random(f"poisson_antiphase:{seed}:{i}")
        rates = (high_rate, low_rate) if i < first_group else (low_rate, high_rate)
        out = []
        for (lo, hi), rate in zip(((0.0, half), (half, duration_s)), rates):
            if rate <= 0:
                continue
            t = lo + rng.expovariate(rate)
            while t < hi:
                if token_source is not None:
                    src = token_source[rng.randrange(len(token_source))]
                    p, o = max(1, src.prompt_tokens), max(1, src.output_tokens)
                else:
                    p = _tokens(prompt_tokens, rng, "prompt_tokens")
                    o = _tokens(output_tokens, rng, "output_tokens")
                out.append(TraceRequest(t, p, o))
                t += rng.expovariate(rate)
        streams.append(out)
    return streams


_FILLER = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
           "incididunt ut labore et dolore magna aliqua").split()


def synthetic_prompt(n_tokens: int) -> str:
    """A prompt of exactly ``n_tokens`` whitespace-separated words (>= 1)."""
    n = max(1, int(n_tokens))
    words = _FILLER * (n // len(_FILLER) + 1)
    return " ".join(words[:n])


def to_request(req: TraceRequest, request_id: str, model: str,
               **fields: object) -> GenerationRequest:
    """A completion :class:`GenerationRequest` for ``req``: a :func:`synthetic_prompt` of
    ``req.prompt_tokens`` words and ``max_tokens = req.output_tokens``; ``fields`` override
    other request fields (``temperature`` defaults to 0)."""
    kw: dict[str, object] = {"temperature": 0.0}
    kw.update(fields)
    return GenerationRequest(request_id=request_id, model=model,
                             prompt=synthetic_prompt(req.prompt_tokens),
                             max_tokens=max(1, req.output_tokens), **kw)  # type: ignore[arg-type]
