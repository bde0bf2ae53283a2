"""What every benchmark in ``benchmarks/`` shares: process CPU and memory readings, percentiles
and medians over repeats, one progress bar, and the JSON + Markdown + PNG report.

Imported as ``import harness``: a benchmark run as a script has ``benchmarks/`` on
``sys.path``; the tests' ``bench`` fixture (tests/conftest.py) puts it there too. Importing
this module is cheap (no rich, matplotlib or networking until a function needs them), so
benchmark child processes may import it as well.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wwwserve_p2p.core.stats import percentile

__all__ = ["percentile", "percentiles", "median", "medians", "proc_cpu_seconds", "proc_rss_mib", "console",
           "progress_bar", "pyplot", "write_report"]


# ---------------------------------------------------------------------------- statistics

def percentiles(values: Sequence[float], qs: Iterable[float] = (50, 95, 99)) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., "p99": ...}`` of ``values`` (``percentile``: linear
    interpolation, NaN when empty); keys are ``f"p{q:g}"``."""
    return {f"p{q:g}": percentile(list(values), q) for q in qs}


def median(values: Iterable[float]) -> float:
    """Median of ``values`` (any iterable, e.g. one value per repeat); NaN when empty."""
    xs = list(values)
    return statistics.median(xs) if xs else math.nan


def medians(columns: Mapping[str, Iterable[float]]) -> dict[str, float]:
    """``{key: median(values)}`` for a mapping of per-repeat value lists."""
    return {k: median(v) for k, v in columns.items()}


# ---------------------------------------------------------------------------- processes

def proc_cpu_seconds(pid: int | None = None, *, missing: float = math.nan) -> float:
    """User + system CPU seconds of process ``pid`` (from ``/proc/<pid>/stat``, clock-tick
    resolution), or of this process when ``pid`` is None (``time.process_time()``, all its
    threads). Returns ``missing`` when the process is gone or /proc cannot be read."""
    if pid is None:
        return time.process_time()
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and ')'
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return missing


def proc_rss_mib(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``); NaN if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return math.nan


# ---------------------------------------------------------------------------- console output

def console(*, stderr: bool = False, width: int = 150) -> Any:
    """A ``rich.console.Console`` on stdout (or stderr); ``width`` columns when that stream is
    not a terminal (logs and CI), the terminal's width otherwise."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else width)


def progress_bar(con: Any = None, *, info: bool = False, description_width: int | None = None) -> Any:
    """A ``rich.progress.Progress`` (use it as a context manager) with columns description, bar,
    done/total and elapsed time; with ``info=True`` a last text column shows each task's
    ``info`` field (so ``add_task(..., info="")`` is then required). Disabled (nothing drawn;
    ``progress.console.print`` still prints) when ``con`` is not a terminal or ``$CI`` is set.
    ``con`` defaults to :func:`console` on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = con if con is not None else console(stderr=True)
    desc = "{task.description}" if description_width is None else "{task.description:<%d}" % description_width
    columns = [TextColumn(desc), BarColumn(), MofNCompleteColumn()]
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    columns.append(TimeElapsedColumn())
    return Progress(*columns, console=con, disable=not con.is_terminal or bool(os.environ.get("CI")))


# ---------------------------------------------------------------------------- report

def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def write_report(out: Path | str, name: str, result: Any, markdown: Sequence[str] | str, *,
                 plots: Mapping[str, Callable[[Any], Any]] | None = None, dpi: int = 120, indent: int = 2,
                 con: Any = None) -> list[Path]:
    """Write ``<out>/<name>.json`` (``result`` as JSON, ``indent``), ``<out>/<name>.md`` (the
    Markdown lines joined by newlines plus a final newline, or the string, ending in one) and, for each
    ``stem -> draw`` of ``plots``, ``<out>/<stem>.png`` from the figure ``draw(pyplot)``
    returns (saved at ``dpi``, then closed). Creates ``out``; prints what it wrote on ``con``
    (default: stdout). Without matplotlib the plots are skipped with a hint.

    :returns: the paths written, JSON first.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown if isinstance(markdown, str) else "\n".join(markdown) + "\n"
    written = [out / f"{name}.json", out / f"{name}.md"]
    written[0].write_text(json.dumps(result, indent=indent))
    written[1].write_text(text if text.endswith("\n") else text + "\n")
    note = ""
    if plots:
        plt = pyplot()
        if plt is None:
            note = " (install matplotlib for the plots)"
        else:
            for stem, draw in plots.items():
                fig = draw(plt)
                path = out / f"{stem}.png"
                fig.savefig(path, dpi=dpi)
                plt.close(fig)
                written.append(path)
    line = f"wrote {', '.join(str(p) for p in written)}{note}"
    if con is None:
        print(line)
    else:
        con.print(line, highlight=False)
    return written
