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
import math
import numbers
import os
import platform
import re

import keras
import numpy as np

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
    names = [str(q) for q, *_ in rows]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"each quantity names one row: {', '.join(twice)} name several")
    differs = [p is not None and h != p for _, h, p, _ in rows]
    cells = []
    for (q, h, p, s), differ in zip(rows, differs, strict=True):
        here, paper = _text(h), "-" if p is None else _text(p)
        if differ and here == paper:  # 0.30000000000000004 and 0.3: show why they differ
            here, paper = repr(h), repr(p)
        cells.append((str(q), here, paper, str(s)))
    header = ("quantity", "here", "paper", "source")
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(3)]
    print(title)
    for (q, h, p, s), mark in zip([header, *cells], [False, *differs], strict=True):
        print(f"{q:<{widths[0]}}  {h:>{widths[1]}}  {p:>{widths[2]}}  {s}"
              + "  <- differs" * mark)
    return [name for name, differ in zip(names, differs, strict=True) if differ]


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
    """Write `results` (numbers, strings, lists, dicts; NumPy's too) for `notebook` (a file
    name such as "07_resnet") as JSON into ``$COURSE_RESULTS_DIR/<notebook>.json``, with the
    profile, device, precision, versions and date; return the file's path, or None when the
    variable is not set. A number that is not finite (a diverged loss) is written as null,
    which JSON readers understand, not as NaN, which they refuse."""
    if not isinstance(notebook, str) or not re.fullmatch(r"[\w-][\w.-]*", notebook):
        raise ValueError(f"notebook is a file name of letters, digits, '_', '-' and '.', "
                         f"such as '07_resnet', not {notebook!r}")
    folder = os.environ.get("COURSE_RESULTS_DIR")
    if not folder:
        return None
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"COURSE_RESULTS_DIR={folder} is a file: it must name a folder")
    os.makedirs(folder, exist_ok=True)
    document = {
        "notebook": notebook,
        "profile": active_profile(),
        "backend": keras.backend.backend(),
        "device": gpu_name() or "cpu",
        "precision": keras.mixed_precision.global_policy().name,
        "versions": versions(),
        "date": datetime.datetime.now().isoformat(" ", "seconds"),
        "results": plain(results),
    }
    path = os.path.join(folder, f"{notebook}.json")
    with whole_file(path) as temporary, open(temporary, "w") as f:
        json.dump(document, f, indent=1, allow_nan=False)
    return path


def plain(value):
    """`value` in JSON's terms: NumPy numbers and arrays as Python's, tuples as lists, numbers
    that are not finite as None; anything else JSON cannot hold is a ValueError."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise ValueError(f"cannot record {value!r} ({type(value).__name__}): give numbers, "
                     "strings, lists or dicts")
