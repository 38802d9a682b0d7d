"""How every notebook closes: the "reproduced vs paper" table, where a result came from, and
the results file that `benchmarks/gpu_check.sh` collects.

- `reproduced(rows)` prints one table of (quantity, here, paper, source) rows, marks each row
  whose two values differ, and returns those rows' names, so that a notebook can assert
  exactly which ones may differ (``assert reproduced(rows) == ["neurons conv1"]``).
- `provenance(history)` says in one line who trained a result: this run, or an earlier one
  whose checkpoint `course_lib.train.fit` found (its backend, device, date and time).
- `record(notebook, **results)` writes the notebook's results, with the profile, device and
  versions, as JSON into ``COURSE_RESULTS_DIR`` when that variable is set (the GPU check
  sets it), and does nothing otherwise.
"""

from __future__ import annotations

import datetime
import json
import numbers
import os
import platform

import keras

from course_lib.config import active_profile, gpu_name, whole_file


def _text(value) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    return f"{value:,.4g}"


def reproduced(rows, *, title: str = "Reproduced vs paper") -> list[str]:
    """Print `rows` of (quantity, here, paper, source) as a table; return the quantities whose
    `here` differs from `paper`.

    A value is shown as given (strings as they are, numbers with thousands separators). Rows
    whose `paper` is None (nothing to compare) are never counted as differing.
    """
    rows = [tuple(row) for row in rows]
    if any(len(row) != 4 for row in rows):
        raise ValueError("each row is (quantity, here, paper, source)")
    cells = [(str(q), _text(h), "-" if p is None else _text(p), str(s)) for q, h, p, s in rows]
    header = ("quantity", "here", "paper", "source")
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(3)]
    differ = [str(q) for q, h, p, _ in rows if p is not None and h != p]
    print(title)
    for i, (q, h, p, s) in enumerate([header, *cells]):
        mark = "  <- differs" if i and rows[i - 1][0] in differ else ""
        print(f"{q:<{widths[0]}}  {h:>{widths[1]}}  {p:>{widths[2]}}  {s}{mark}")
    return differ


def provenance(history: dict) -> str:
    """One line on who trained the result in `history` (as `course_lib.train.fit` returns it)."""
    run = history.get("run")
    if not run:
        return "trained by this notebook (no record of where)"
    minutes = run["seconds"] / 60
    if run.get("earlier"):
        return (f"from an earlier run's checkpoint: {run['backend']} on {run['device']}, "
                f"{run['date']}, {minutes:.1f} min of training")
    return f"trained now: {run['backend']} on {run['device']}, {minutes:.1f} min of training"


def versions() -> dict:
    """Python, Keras and the backend's version: what a results table needs to be repeated."""
    backend = keras.backend.backend()
    found = {"python": platform.python_version(), "keras": keras.__version__}
    try:
        found[backend] = __import__(backend).__version__
    except ImportError:  # pragma: no cover - the backend Keras runs on is importable
        pass
    return found


def record(notebook: str, **results) -> str | None:
    """Write `results` (numbers, strings, lists, dicts) for `notebook` as JSON into
    ``$COURSE_RESULTS_DIR/<notebook>.json``, with the profile, device, precision, versions
    and date; return the file's path, or None when the variable is not set."""
    folder = os.environ.get("COURSE_RESULTS_DIR")
    if not folder:
        return None
    os.makedirs(folder, exist_ok=True)
    document = {
        "notebook": notebook,
        "profile": active_profile(),
        "backend": keras.backend.backend(),
        "device": gpu_name() or "cpu",
        "precision": keras.mixed_precision.global_policy().name,
        "versions": versions(),
        "date": datetime.datetime.now().isoformat(" ", "seconds"),
        "results": results,
    }
    path = os.path.join(folder, f"{notebook}.json")
    with whole_file(path) as temporary, open(temporary, "w") as f:
        json.dump(document, f, indent=1, default=float)
    return path
