#!/usr/bin/env python3
"""Execute a Jupyter notebook with plain Python, for machines that have no Jupyter.

    python benchmarks/run_notebook.py NOTEBOOK.ipynb OUT.ipynb [--html OUT.html] [--dpi 80]

The lent GPU machine has JAX, NumPy and matplotlib but no Jupyter, nbconvert or nbformat, so
`benchmarks/gpu_check.sh` runs the notebooks with this file. It does what
``jupyter nbconvert --to notebook --execute`` does, as far as the course's notebooks need:

- code cells run in order in one namespace (``__name__ == "__main__"``), in the notebook's
  folder, with matplotlib's Agg backend; a cell's last expression is shown as its result;
- each cell's stdout and stderr become stream outputs (and are echoed, so a log shows them);
- every figure that ``plt.show()`` shows, or that is still open when a cell ends (as the inline
  backend does), becomes a PNG display_data output and is closed; ``display(obj)`` works;
- IPython magics and shell escapes (``%...``, ``!...``) are skipped with a note on stderr;
- the first exception stops the run: it is recorded as an error output, the later cells keep
  no outputs, and the exit status is 1 (124 when stopped by SIGTERM, as `timeout` sends it);
- OUT.ipynb (nbformat 4, JSON written by hand: no nbformat needed) is written before the first
  cell and rewritten after every cell, so a run that is killed still leaves the cells it
  finished; its metadata's ``run_notebook.status`` says "running" until the last cell ends
  (then "ok", "error" or "timed out"), so a run killed or ended part-way never reads "ok";
  text that is not valid UTF-8 is kept as ``\\udcXX`` escapes; with ``--html`` a
  self-contained HTML page of it is written too (``jupyter nbconvert --to html OUT.ipynb``
  gives the usual one wherever Jupyter is installed).

Only the standard library is needed, plus matplotlib when the notebook uses it.
"""

from __future__ import annotations

import argparse
import ast
import base64
import datetime
import html
import io
import json
import linecache
import os
import re
import signal
import sys
import time
import traceback

MAGIC = re.compile(r"^(\s*)([%!].*)$")
# lone surrogates (os.fsdecode of bytes that are not UTF-8) cannot be written as UTF-8
SURROGATE = re.compile("[\ud800-\udfff]")


class Stopped(BaseException):
    """Raised in the running cell when the process gets SIGTERM (`timeout` ran out)."""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def strip_magics(source: str) -> tuple[str, list[str]]:
    """The cell's code with IPython-only lines replaced by `pass`, and the lines skipped.

    A cell magic (``%%time``, ``%%capture``...) on the first line skips the whole cell."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        return "", [source]
    kept, skipped = [], []
    for line in lines:
        match = MAGIC.match(line)
        if match:
            kept.append(f"{match.group(1)}pass  # skipped: {match.group(2)}")
            skipped.append(match.group(2))
        else:
            kept.append(line)
    return "\n".join(kept), skipped


def split_lines(text: str) -> list[str]:
    """Text as nbformat stores it: a list of lines that keep their newlines."""
    return text.splitlines(keepends=True)


class Outputs:
    """The outputs of the running cell, in order; consecutive stream text is merged (its
    pieces are kept in a list and joined once: adding to one string copies it every time)."""

    def __init__(self):
        self.items: list[dict] = []

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        last = self.items[-1] if self.items else None
        if last and last["output_type"] == "stream" and last["name"] == name:
            last["_text"].append(text)
        else:
            self.items.append({"output_type": "stream", "name": name, "_text": [text]})

    def add(self, output: dict) -> None:
        self.items.append(output)

    def finished(self) -> list[dict]:
        done = []
        for item in self.items:
            item = dict(item)
            if "_text" in item:
                item["text"] = split_lines("".join(item.pop("_text")))
            done.append(item)
        return done


class Capture(io.TextIOBase):
    """A stdout/stderr stand-in: records what is written, and echoes it to the real stream."""

    def __init__(self, name: str, outputs: Outputs, echo):
        self.name, self.outputs, self.echo = name, outputs, echo

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        self.outputs.stream(self.name, text)
        if self.echo is not None:
            try:  # the log gets valid text: undecodable bytes as \\udcXX, as the notebook
                self.echo.write(without_surrogates(text))
            except UnicodeEncodeError:  # text the terminal's encoding cannot show
                encoding = getattr(self.echo, "encoding", None) or "utf-8"
                self.echo.write(text.encode(encoding, "backslashreplace").decode(encoding))
            self.echo.flush()
        return len(text)

    def flush(self) -> None:
        if self.echo is not None:
            self.echo.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:  # for code that asks (faulthandler, subprocess): the real one
        real = sys.__stdout__ if self.name == "stdout" else sys.__stderr__
        return (self.echo or real).fileno()


class Runner:
    def __init__(self, path: str, dpi: int, echo: bool):
        self.path = os.path.abspath(path)
        self.dpi, self.echo = dpi, echo
        self.outputs = Outputs()
        self.namespace = {"__name__": "__main__", "__builtins__": __builtins__,
                          "display": self.display}
        self.plt = None

    # ---------------------------------------------------------------- figures and display
    def pyplot(self):
        """matplotlib.pyplot with its show() replaced by ours, or None without matplotlib."""
        if self.plt is None:
            try:
                import matplotlib.pyplot as plt
            except ImportError:
                return None
            self.plt = plt

            def show(*args, **kwargs):  # a function: switch_backend sets its __signature__
                self.show()

            plt.show = show
        return self.plt

    def figure_output(self, figure) -> dict:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=self.dpi, bbox_inches="tight")
        width, height = figure.get_size_inches() * figure.dpi
        return {"output_type": "display_data",
                "data": {"image/png": base64.b64encode(buffer.getvalue()).decode() + "\n",
                         "text/plain": [f"<Figure size {width:g}x{height:g} with "
                                        f"{len(figure.axes)} Axes>"]},
                "metadata": {}}

    def show(self, *args, **kwargs) -> None:
        """plt.show(): every open figure becomes an output, then is closed (as inline does)."""
        plt = self.pyplot()
        if plt is None:
            return
        for number in plt.get_fignums():
            figure = plt.figure(number)
            self.outputs.add(self.figure_output(figure))
            plt.close(figure)

    def rich(self, value) -> dict:
        """The data of an execute_result or display_data for `value`."""
        data = {"text/plain": split_lines(repr(value)) or [""]}
        for method, mime in (("_repr_html_", "text/html"), ("_repr_markdown_", "text/markdown"),
                             ("_repr_png_", "image/png")):
            render = getattr(value, method, None)
            if callable(render) and not isinstance(value, type):
                try:
                    shown = render()
                except Exception:  # a broken repr must not stop the notebook
                    continue
                if shown is None:
                    continue
                if mime == "image/png":
                    shown = base64.b64encode(shown).decode() + "\n"
                else:
                    shown = split_lines(shown)
                data[mime] = shown
        return data

    def display(self, *values, **kwargs) -> None:
        """IPython's display(), for what the course's notebooks show."""
        plt = self.pyplot()
        for value in values:
            if plt is not None and isinstance(value, plt.Figure):
                self.outputs.add(self.figure_output(value))
            else:
                self.outputs.add({"output_type": "display_data", "data": self.rich(value),
                                  "metadata": {}})

    # ---------------------------------------------------------------- one cell
    def run_cell(self, source: str, filename: str, count: int) -> None:
        """Run one cell's code; exceptions propagate to the caller."""
        tree = ast.parse(source, filename, "exec")
        last = None
        quiet = source.rstrip().endswith(";")  # as in IPython, a final ";" hides the result
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not quiet:
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), self.namespace)
        if last is not None:
            value = eval(compile(last, filename, "eval"), self.namespace)
            if value is not None:
                self.namespace["_"] = value
                plt = self.pyplot()
                if not (plt is not None and isinstance(value, plt.Figure)):  # shown below
                    self.outputs.add({"output_type": "execute_result", "data": self.rich(value),
                                      "metadata": {}, "execution_count": count})

    def error_output(self, error: BaseException, ename: str | None = None) -> dict:
        frames = traceback.extract_tb(error.__traceback__)
        # drop the runner's own frames: the traceback starts in the notebook's cell
        while frames and frames[0].filename == __file__:
            frames.pop(0)
        if ename:  # our own signal handler's frame says nothing about the notebook
            while frames and frames[-1].filename == __file__:
                frames.pop()
            last = [f"{ename}: {error}\n"]
        else:
            last = traceback.format_exception_only(type(error), error)
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames), *last]
        return {"output_type": "error", "ename": ename or type(error).__name__,
                "evalue": str(error), "traceback": "".join(lines).rstrip("\n").split("\n")}


def without_surrogates(text: str, backslash: str = "\\") -> str:
    """`text` with each lone surrogate (from bytes that are not UTF-8) written as the
    characters \\udcXX, so that it can be written as UTF-8."""
    return SURROGATE.sub(lambda match: f"{backslash}u{ord(match.group()):04x}", text)


def write_json(path: str, document: dict) -> None:
    """Write `document` through a temporary file (a reader never sees half a notebook);
    the temporary file never stays behind, whatever happens."""
    # in JSON text a backslash is written \\, so the surrogate reads back as the text \udcXX
    text = without_surrogates(json.dumps(document, indent=1, ensure_ascii=False), "\\\\")
    temporary = path + ".tmp"
    try:
        with open(temporary, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text + "\n")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def execute(source_path: str, out_path: str, *, html_path: str | None = None, dpi: int = 80,
            echo: bool = True) -> int:
    """Execute `source_path` into `out_path`; return 0, 1 (a cell failed) or 124 (SIGTERM)."""
    with open(source_path, encoding="utf-8") as f:
        notebook = json.load(f)
    if notebook.get("nbformat") != 4:
        raise SystemExit(f"{source_path}: nbformat {notebook.get('nbformat')} is not 4")
    out_path = os.path.abspath(out_path)
    html_path = html_path and os.path.abspath(html_path)
    folder = os.path.dirname(os.path.abspath(source_path))
    cells = notebook["cells"]
    code_cells = [cell for cell in cells if cell["cell_type"] == "code"]
    for cell in code_cells:  # a clean slate: nothing left over from an earlier run
        cell["outputs"], cell["execution_count"] = [], None
        cell.get("metadata", {}).pop("execution", None)
    notebook.setdefault("metadata", {})["language_info"] = {
        "name": "python", "version": ".".join(map(str, sys.version_info[:3]))}

    os.environ.setdefault("MPLBACKEND", "Agg")
    runner = Runner(source_path, dpi, echo)
    runner.pyplot()  # before the first cell, so that its plt.show() is already ours
    real_stdout, real_stderr = sys.stdout, sys.stderr
    log = real_stderr

    def stop(signum, frame):
        raise Stopped(f"stopped by signal {signum} (the time limit ran out)")

    previous = signal.signal(signal.SIGTERM, stop)
    cwd, path0 = os.getcwd(), list(sys.path)
    os.chdir(folder)
    sys.path.insert(0, folder)
    started, status, count = time.perf_counter(), 0, 0
    name = os.path.basename(source_path)

    def record(state: str) -> None:
        """The run so far into the notebook's metadata, and the notebook to `out_path`."""
        notebook["metadata"]["run_notebook"] = {
            "source": source_path, "cells_run": count, "code_cells": len(code_cells),
            "seconds": round(time.perf_counter() - started, 2), "status": state}
        write_json(out_path, notebook)

    try:
        # "running" until the last cell ends: a run killed (SIGKILL) or ended part-way
        # (os._exit) leaves a notebook that does not read "ok"
        record("running")
        for index, cell in enumerate(code_cells, 1):
            count += 1
            runner.outputs = Outputs()
            code, skipped = strip_magics("".join(cell.get("source", "")))
            filename = f"<{name} cell {index}>"
            linecache.cache[filename] = (len(code), None, split_lines(code + "\n"), filename)
            began, tick = now(), time.perf_counter()
            sys.stdout = Capture("stdout", runner.outputs, real_stdout if echo else None)
            sys.stderr = Capture("stderr", runner.outputs, real_stderr if echo else None)
            failed = None
            try:
                for line in skipped:
                    print(f"[run_notebook] skipped (IPython only): {line.splitlines()[0]}",
                          file=sys.stderr)
                runner.run_cell(code, filename, count)
                runner.show()  # figures still open at the end of a cell, as inline shows them
            except Stopped as error:
                failed = runner.error_output(error, "TimeoutError")
                status = 124
            except BaseException as error:  # noqa: BLE001 - a notebook's failure is data
                failed = runner.error_output(error)
                status = 1
            finally:
                sys.stdout, sys.stderr = real_stdout, real_stderr
            if failed is not None:
                try:
                    runner.show()  # what the cell drew before it failed
                except Exception:  # noqa: BLE001 - the cell's own error is the one to report
                    pass
                runner.outputs.add(failed)
            cell["outputs"] = runner.outputs.finished()
            cell["execution_count"] = count
            cell.setdefault("metadata", {})["execution"] = {
                "iopub.execute_input": began, "shell.execute_reply": now()}
            seconds = time.perf_counter() - tick
            finished = failed is not None or count == len(code_cells)
            record({0: "ok", 1: "error", 124: "timed out"}[status] if finished else "running")
            mark = "ok" if failed is None else f"{failed['ename']}: {failed['evalue']}"[:200]
            print(f"[run_notebook] {name} cell {index}/{len(code_cells)} {seconds:.1f} s {mark}",
                  file=log, flush=True)
            if failed is not None:
                print("\n".join(failed["traceback"]), file=log, flush=True)
                break
    finally:
        sys.stdout, sys.stderr = real_stdout, real_stderr
        signal.signal(signal.SIGTERM, previous)
        os.chdir(cwd)
        sys.path[:] = path0
    if not code_cells:
        record("ok")
    if html_path:
        with open(html_path, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(without_surrogates(to_html(notebook, name)))
    total = time.perf_counter() - started
    print(f"[run_notebook] {name}: {'ok' if status == 0 else 'FAILED'} after {count} of "
          f"{len(code_cells)} code cells, {total:.1f} s -> {out_path}", file=log, flush=True)
    return status


# -------------------------------------------------------------------- a plain HTML page
STYLE = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;white-space:pre-wrap}
.in{border-left:3px solid #36c}.out{margin:0 0 0 1em;background:none}.err{background:#fee}
.n{color:#888;font-size:80%}img{max-width:100%}.md{margin:1em 0}"""


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def _markdown(source: str) -> str:
    """Markdown as HTML with `markdown` (on the GPU machine) or `mistune` (nbconvert's), else
    the text as it is."""
    try:
        import markdown
    except ImportError:
        pass
    else:
        return markdown.markdown(source, extensions=["tables", "fenced_code"])
    try:
        import mistune
        return mistune.create_markdown(plugins=["table"])(source)
    except (ImportError, AttributeError, TypeError):  # mistune 0.8 has other names
        return f"<pre>{html.escape(source)}</pre>"


def to_html(notebook: dict, title: str) -> str:
    """A self-contained page: markdown (rendered when `markdown` is installed), code, outputs,
    figures embedded; MathJax from its CDN renders the formulas when the reader is online."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{STYLE}</style><script>MathJax={{tex:{{inlineMath:[['$','$']]}}}}"
             "</script><script async src='https://cdn.jsdelivr.net/npm/mathjax@3/es5/"
             "tex-chtml.js'></script></head><body>"]
    for cell in notebook["cells"]:
        source = _text(cell.get("source", ""))
        if cell["cell_type"] == "markdown":
            parts.append(f"<div class='md'>{_markdown(source)}</div>")
            continue
        if cell["cell_type"] != "code":
            parts.append(f"<pre>{html.escape(source)}</pre>")
            continue
        count = cell.get("execution_count") or " "
        parts.append(f"<div class='n'>In [{count}]:</div><pre class='in'>{html.escape(source)}"
                     "</pre>")
        for output in cell.get("outputs", []):
            kind = output["output_type"]
            if kind == "stream":
                css = "out err" if output["name"] == "stderr" else "out"
                parts.append(f"<pre class='{css}'>{html.escape(_text(output['text']))}</pre>")
            elif kind == "error":
                text = "\n".join(output["traceback"])
                parts.append(f"<pre class='out err'>{html.escape(text)}</pre>")
            else:
                data = output.get("data", {})
                if "image/png" in data:
                    png = _text(data["image/png"]).strip()
                    parts.append(f"<img src='data:image/png;base64,{png}'>")
                elif "text/html" in data:
                    parts.append(f"<div class='out'>{_text(data['text/html'])}</div>")
                else:
                    text = _text(data.get("text/plain", ""))
                    parts.append(f"<pre class='out'>{html.escape(text)}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("output", help="the executed notebook to write (.ipynb)")
    parser.add_argument("--html", help="also write this self-contained HTML page")
    parser.add_argument("--dpi", type=int, default=None,
                        help="resolution of the figures' PNGs (default: RUN_NOTEBOOK_DPI, else "
                             "80, as small as legible)")
    parser.add_argument("--quiet", action="store_true",
                        help="do not echo the cells' output (it is still recorded)")
    args = parser.parse_args(argv)
    if args.dpi is None:
        dpi = os.environ.get("RUN_NOTEBOOK_DPI", "80")
        args.dpi = int(dpi) if dpi.isdigit() else 0
        if args.dpi < 1:
            parser.error(f"RUN_NOTEBOOK_DPI={dpi} is not a whole number of at least 1 (80 is "
                         "the default): set it to one, or unset it")
    elif args.dpi < 1:
        parser.error(f"--dpi must be at least 1, not {args.dpi}")
    os.environ.setdefault("MPLBACKEND", "Agg")
    output_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(output_dir, exist_ok=True)
    try:
        return execute(args.notebook, args.output, html_path=args.html, dpi=args.dpi,
                       echo=not args.quiet)
    except Stopped:  # SIGTERM between two cells
        print("[run_notebook] stopped between cells (the time limit ran out)", file=sys.stderr)
        return 124


if __name__ == "__main__":
    sys.exit(main())
