"""benchmarks/: the notebook runner that the GPU check uses, and the check's scripts.

The runner executes notebooks on a machine without Jupyter; these tests run it on tiny
notebooks made here, so they take seconds and need neither a GPU nor the course's data.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import keras
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "benchmarks", "run_notebook.py")
GPU_CHECK = os.path.join(ROOT, "benchmarks", "gpu_check.sh")
TORCH_REFERENCE = os.path.join(ROOT, "benchmarks", "torch_reference.py")
# torch is an optional dependency of the reference script alone (not installed in CI)
HAS_TORCH = all(importlib.util.find_spec(m) for m in ("torch", "torchvision"))


def notebook(path, *sources):
    """Write a notebook whose code cells hold `sources`, with one markdown cell first."""
    cells = [{"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# A test"}]
    for i, source in enumerate(sources):
        cells.append({"cell_type": "code", "execution_count": None, "id": f"cell{i}",
                      "metadata": {}, "outputs": [], "source": source})
    document = {"cells": cells, "metadata": {"kernelspec": {
        "display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(document))
    return path


def run(source, out, *args):
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, RUNNER, str(source), str(out), *args],
                          capture_output=True, text=True, env=env, timeout=120)


def code_cells(path):
    with open(path) as f:
        return [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]


def check_schema(path):
    """Validate against the nbformat 4 schema where nbformat is installed (as with Jupyter)."""
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.read(str(path), as_version=4))


def test_runner_records_streams_figures_and_results(tmp_path):
    source = notebook(
        tmp_path / "ok.ipynb",
        "%matplotlib inline\nimport os\nprint('hello', os.path.basename(os.getcwd()))",
        "import sys\nimport matplotlib.pyplot as plt\n"
        "plt.figure(figsize=(2, 2)); plt.plot([0, 1])\nplt.show()\nprint('oops', file=sys.stderr)",
        "fig, ax = plt.subplots(figsize=(1, 1))\nanswer = 6 * 7\nassert answer == 42\nanswer",
        "answer;",
    )
    out = tmp_path / "out" / "ok.ipynb"
    done = run(source, out, "--html", str(tmp_path / "out" / "ok.html"))
    assert done.returncode == 0, done.stderr
    first, second, third, fourth = code_cells(out)
    assert [c["execution_count"] for c in (first, second, third, fourth)] == [1, 2, 3, 4]
    # the magic is skipped with a note; the cell runs in the notebook's folder
    note = first["outputs"][0]
    assert note["name"] == "stderr" and "%matplotlib" in note["text"][0]
    assert first["outputs"][1] == {"output_type": "stream", "name": "stdout",
                                   "text": [f"hello {tmp_path.name}\n"]}
    # plt.show() gives a PNG, in order with the text around it
    kinds = [(o["output_type"], o.get("name")) for o in second["outputs"]]
    assert kinds == [("display_data", None), ("stream", "stderr")]
    assert second["outputs"][0]["data"]["image/png"].startswith("iVBOR")  # PNG's signature
    # the last expression is the result; a figure left open is shown after it, as inline does
    assert third["outputs"][0]["output_type"] == "execute_result"
    assert third["outputs"][0]["data"]["text/plain"] == ["42"]
    assert third["outputs"][1]["output_type"] == "display_data"
    assert fourth["outputs"] == []  # a final ";" hides the result
    html = (tmp_path / "out" / "ok.html").read_text()
    assert "data:image/png;base64,iVBOR" in html and "hello" in html
    check_schema(out)


def test_runner_stops_at_the_first_error_and_exits_non_zero(tmp_path):
    source = notebook(tmp_path / "bad.ipynb", "x = 1\nprint('before')",
                      "print('partial')\nassert x == 2, 'x is not 2'", "print('never')")
    out = tmp_path / "bad-out.ipynb"
    done = run(source, out)
    assert done.returncode == 1
    assert "AssertionError: x is not 2" in done.stderr
    first, second, third = code_cells(out)
    assert second["outputs"][0]["text"] == ["partial\n"]
    error = second["outputs"][-1]
    assert (error["output_type"], error["ename"], error["evalue"]) == (
        "error", "AssertionError", "x is not 2")
    assert any("assert x == 2" in line for line in error["traceback"])  # the cell's own line
    assert third["execution_count"] is None and third["outputs"] == []
    with open(out) as f:
        assert json.load(f)["metadata"]["run_notebook"]["status"] == "error"
    check_schema(out)


def test_the_torch_reference_trains_torchvisions_network_or_says_what_it_needs():
    """Where torch is installed it measures torchvision's ResNet-18 with the CIFAR stem
    (the course's build("resnet18", stem="small") has the same 11,173,962 parameters);
    elsewhere (CI) it exits 3 saying what it needs. Bad arguments exit 2."""
    done = subprocess.run([sys.executable, TORCH_REFERENCE, "--model", "resnet18_small",
                           "--batch", "2", "--steps", "1", "--warmup", "1", "--no-compile",
                           "--json"], capture_output=True, text=True, timeout=600)
    if HAS_TORCH:
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["trainable_parameters"] == 11_173_962 and result["training"] > 0
    else:
        assert done.returncode == 3 and "needs torch and torchvision" in done.stderr
    bad = subprocess.run([sys.executable, TORCH_REFERENCE, "--model", "resnet18_small",
                          "--batch", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--batch must be at least 1" in bad.stderr


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_prep.sh"])
def test_scripts_parse(script):
    subprocess.run(["bash", "-n", os.path.join(ROOT, "benchmarks", script)], check=True)


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_gpu_check_runs_every_notebook_and_reports_each(tmp_path):
    """A dry run on the CPU: one notebook that records results, one that fails, one missing."""
    good = notebook(tmp_path / "good.ipynb",
                    "import json, os\n"
                    "folder = os.environ['COURSE_RESULTS_DIR']\n"
                    "with open(os.path.join(folder, 'good.json'), 'w') as f:\n"
                    "    json.dump({'results': {'accuracy': 0.5}}, f)")
    bad = notebook(tmp_path / "bad.ipynb", "raise RuntimeError('no data')")
    out = tmp_path / "out"
    env = dict(os.environ, COURSE_PROFILE="smoke", PYTHON=sys.executable,
               COURSE_CACHE=str(tmp_path / "cache"), COURSE_DATA_DIR=str(tmp_path))
    done = subprocess.run(["bash", GPU_CHECK, str(out), str(good), str(bad),
                           str(tmp_path / "missing.ipynb")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    with open(out / "gpu_check.json") as f:
        summary = json.load(f)
    status = {os.path.basename(n["notebook"]): n["status"] for n in summary["notebooks"]}
    assert status == {"good.ipynb": "ok", "bad.ipynb": "failed", "missing.ipynb": "failed"}
    good_entry, bad_entry = summary["notebooks"][:2]
    assert good_entry["results"] == {"accuracy": 0.5} and good_entry["seconds"] > 0
    assert bad_entry["error"] == "RuntimeError: no data in bad.ipynb cell 1: " \
        "raise RuntimeError('no data')"
    assert summary["profile"] == "smoke" and summary["backend"] == "jax"
    assert sorted(os.listdir(out)) == ["bad.html", "bad.ipynb", "good.html", "good.ipynb",
                                       "good.json", "gpu_check.json", "gpu_check.log"]
    assert "no such notebook" in (out / "gpu_check.log").read_text()


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="gpu_check.sh runs JAX whatever the backend: checked in the JAX run")
def test_gpu_check_bench_measures_each_network_and_reports_failures(tmp_path):
    """--bench, a dry run on the CPU: one network measured, one name that is no network."""
    out = tmp_path / "out"
    env = dict(os.environ, GPU_CHECK_ALLOW_CPU="1", GPU_CHECK_BENCH_STEPS="1",
               PYTHON=sys.executable, COURSE_CACHE=str(tmp_path / "cache"),
               COURSE_DATA_DIR=str(tmp_path))
    small = "resnet18:2:32:stem=small,num_classes=10"
    done = subprocess.run(["bash", GPU_CHECK, "--bench", str(out), "resnet20:4:32",
                           "resnet21:4:32", small, "torch:resnet18_small:2:32"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr
    with open(out / "bench.json") as f:
        runs = json.load(f)["runs"]
    assert [(r["spec"], r["status"]) for r in runs[:3]] == [
        ("resnet20:4:32", "ok"), ("resnet21:4:32", "failed"), (small, "ok")]
    if HAS_TORCH:  # the reference ran: the same network as the course's
        assert runs[3]["result"]["trainable_parameters"] == 11_173_962
    else:
        assert runs[3]["status"] == "failed" and "needs torch and torchvision" in \
            runs[3]["error"]
    result = runs[0]["result"]
    assert result["macs"] == 40_551_040 and result["batch"] == 4
    assert all(result[key] > 0 for key in ("inference", "training", "pipeline"))
    assert "unknown model 'resnet21'" in runs[1]["error"]
    # the builder options after the size reach the builder
    assert runs[2]["result"]["trainable_parameters"] == 11_173_962
    assert sorted(os.listdir(out)) == ["bench.json", "gpu_check.log"]


def gpu_check(tmp_path, *args, **settings):
    """benchmarks/gpu_check.sh ARGS, a dry run on the CPU, with these environment settings."""
    env = {**os.environ, "COURSE_PROFILE": "smoke", "PYTHON": sys.executable,
           "COURSE_CACHE": str(tmp_path / "cache"), "COURSE_DATA_DIR": str(tmp_path), **settings}
    return subprocess.run(["bash", GPU_CHECK, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("settings, message", [
    ({"GPU_CHECK_BUDGET": "abc"}, "GPU_CHECK_BUDGET=abc is not a whole number of seconds"),
    ({"GPU_CHECK_BUDGET": "10m"}, "GPU_CHECK_BUDGET=10m is not a whole number of seconds"),
    ({"GPU_CHECK_TIMEOUT": "5.5"}, "GPU_CHECK_TIMEOUT=5.5 is not a whole number"),
    ({"GPU_CHECK_TIMEOUT": "0"}, "GPU_CHECK_TIMEOUT=0 is not a whole number"),
    ({"GPU_CHECK_TIMEOUT": "-5"}, "GPU_CHECK_TIMEOUT=-5 is not a whole number"),
    ({"GPU_CHECK_MIN": "x"}, "GPU_CHECK_MIN=x is not a whole number"),
    ({"RUN_NOTEBOOK_DPI": "high"}, "RUN_NOTEBOOK_DPI=high is not a whole number"),
    ({"GPU_CHECK_HTML": "no"}, "GPU_CHECK_HTML=no: set it to 0 (no) or 1 (yes)"),
    ({"GPU_CHECK_RESUME": "yes"}, "GPU_CHECK_RESUME=yes: set it to 0 (no) or 1 (yes)"),
    ({"GPU_CHECK_RESUME": "true"}, "GPU_CHECK_RESUME=true: set it to 0 (no) or 1 (yes)"),
])
def test_gpu_check_refuses_bad_settings_before_anything_runs(tmp_path, settings, message):
    """A bad number or switch stops the call at once (exit 2), before installing or running
    anything, and deletes nothing: no checkpoint, no output."""
    checkpoint = tmp_path / "cache" / "checkpoints" / "good-run"
    checkpoint.mkdir(parents=True)
    good = notebook(tmp_path / "good.ipynb", "print('ran')")
    done = gpu_check(tmp_path, tmp_path / "out", good, **settings)
    assert done.returncode == 2 and message in done.stderr, done.stdout + done.stderr
    assert checkpoint.is_dir() and not (tmp_path / "out").exists()


def test_gpu_check_refuses_outputs_that_would_overwrite_notebooks(tmp_path):
    """Two notebooks of one name, OUTDIR the notebook's own folder, or a notebook in OUTDIR
    that the script did not write: exit 2, saying which, with every file left as it was."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = notebook(tmp_path / "a" / "same.ipynb", "print('a')")
    second = notebook(tmp_path / "b" / "same.ipynb", "print('b')")
    done = gpu_check(tmp_path, tmp_path / "out", first, second)
    assert done.returncode == 2 and f"{first} and {second} are both named same" in done.stderr
    before = first.read_text()
    done = gpu_check(tmp_path, tmp_path / "a", first)
    assert done.returncode == 2 and "would replace the notebook itself" in done.stderr
    done = gpu_check(tmp_path, tmp_path / "b", first)  # b/same.ipynb is someone's notebook
    assert done.returncode == 2 and "not an executed notebook that this script wrote" in \
        done.stderr
    assert first.read_text() == before and second.exists()
    done = gpu_check(tmp_path, "--bench", tmp_path / "out", "torch:resnet50:2:32:fast=1")
    assert done.returncode == 2 and "option 'fast=1' is not one" in done.stderr


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils' timeout")
def test_gpu_check_reports_only_this_calls_complete_runs(tmp_path):
    """Old files of the named notebooks are deleted first (never reported as new); a
    notebook that exits 0 part-way fails; a bad results file fails its notebook alone; only
    the checkpoints of the notebooks run are deleted."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("stale", "07_early"):  # from an earlier call
        (out / f"{name}.json").write_text('{"results": {"accuracy": 0.99}}')
        (out / f"{name}.ipynb").write_text('{"metadata": {"run_notebook": {"status": "ok"}}}')
    (out / "07_early.ipynb.tmp").write_text("half")
    checkpoints = tmp_path / "cache" / "checkpoints"
    for folder in ("07_early-a", "07_early_b-c", "08_other-a", "imagenet-resnet50"):
        (checkpoints / folder).mkdir(parents=True)
    save = ("import json, os\n"
            "with open(os.path.join(os.environ['COURSE_RESULTS_DIR'], '{}.json'), 'w') as f:\n"
            "    f.write({!r})")
    early = notebook(tmp_path / "07_early.ipynb", "import os\nprint('one')",
                     "os._exit(0)", "print('never')")
    listed = notebook(tmp_path / "listed.ipynb", save.format("listed", "[1, 2]"))
    cut = notebook(tmp_path / "cut.ipynb", save.format("cut", '{"results": {"acc'))
    good = notebook(tmp_path / "good.ipynb", save.format("good", '{"results": {"a": 1}}'))
    done = gpu_check(tmp_path, out, early, listed, cut, good, tmp_path / "stale.ipynb",
                     GPU_CHECK_HTML="0")
    assert done.returncode == 1, done.stdout + done.stderr
    with open(out / "gpu_check.json") as f:
        summary = json.load(f)
    entries = {os.path.basename(n["notebook"]): n for n in summary["notebooks"]}
    assert {name: entry["status"] for name, entry in entries.items()} == {
        "07_early.ipynb": "failed", "listed.ipynb": "failed", "cut.ipynb": "failed",
        "good.ipynb": "ok", "stale.ipynb": "failed"}
    assert summary["ok"] is False
    early_entry = entries["07_early.ipynb"]
    assert early_entry["cells_run"] == "1/3" and "code cell 2 ended the process" in \
        early_entry["error"] and "results" not in early_entry
    assert "results file listed.json cannot be read: it holds a list" in \
        entries["listed.ipynb"]["error"]
    assert "results file cut.json cannot be read" in entries["cut.ipynb"]["error"]
    assert entries["good.ipynb"]["results"] == {"a": 1}
    assert "results" not in entries["stale.ipynb"] and entries["stale.ipynb"]["files"] == []
    assert not (out / "stale.json").exists() and not (out / "07_early.ipynb.tmp").exists()
    assert not list(out.glob("*.html"))  # GPU_CHECK_HTML=0
    assert sorted(os.listdir(checkpoints)) == ["08_other-a", "imagenet-resnet50"]


@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="gpu_check.sh runs JAX whatever the backend: checked in the JAX run")
def test_gpu_check_bench_keeps_good_results_beside_bad_output(tmp_path):
    """--bench: a run whose output is no result fails alone, the others' results stay, every
    run's output is in gpu_check.log, and a torch: spec's options reach the reference
    (benchmarks run by a stand-in for Python, so that this takes seconds)."""
    stand_in = tmp_path / "python"
    stand_in.write_text(
        "#!/bin/bash\n"
        'if [ "$2" = course_lib.bench ]; then\n'
        '    case $4 in good) echo \'{"training": 5.0}\' ;; *) echo "not json {" ;; esac\n'
        "    exit 0\nfi\n"
        'case $1 in *torch_reference.py) echo "torch args: $*"; '
        'echo \'{"training": 1.0}\'; exit 0 ;; esac\n'
        f'exec {sys.executable} "$@"\n')
    stand_in.chmod(0o755)
    out = tmp_path / "out"
    done = gpu_check(tmp_path, "--bench", out, "good:2:32", "bad:2:32",
                     "torch:resnet18_small:2:32:precision=float32,compile=no",
                     PYTHON=str(stand_in), GPU_CHECK_ALLOW_CPU="1")
    assert done.returncode == 1, done.stdout + done.stderr
    with open(out / "bench.json") as f:
        runs = json.load(f)["runs"]
    assert [(r["spec"], r["status"]) for r in runs] == [
        ("good:2:32", "ok"), ("bad:2:32", "failed"),
        ("torch:resnet18_small:2:32:precision=float32,compile=no", "ok")]
    assert runs[0]["result"] == {"training": 5.0} and "not json {" in runs[1]["error"]
    log = (out / "gpu_check.log").read_text()
    assert "not json {" in log and '{"training": 5.0}' in log
    assert "--precision float32 --no-compile" in log


def test_runner_keeps_text_that_is_not_utf8_and_runs_on(tmp_path):
    """A cell printing undecodable bytes (a lone surrogate) is recorded as an escape; the
    later cells run, no .tmp stays, the status is "ok"."""
    source = notebook(tmp_path / "bytes.ipynb",
                      'import os\nprint(os.fsdecode(b"caf\\xe9"))\nos.fsdecode(b"x\\xff")',
                      "print('after')")
    out = tmp_path / "out" / "bytes.ipynb"
    done = run(source, out, "--html", str(tmp_path / "out" / "bytes.html"))
    assert done.returncode == 0, done.stderr
    first, second = code_cells(out)
    assert first["outputs"][0]["text"] == ["caf\\udce9\n"]
    assert second["outputs"][0]["text"] == ["after\n"]
    with open(out) as f:
        assert json.load(f)["metadata"]["run_notebook"]["status"] == "ok"
    assert sorted(os.listdir(out.parent)) == ["bytes.html", "bytes.ipynb"]
    assert "caf\\udce9" in (tmp_path / "out" / "bytes.html").read_text()


def test_runner_marks_a_run_ended_part_way_as_running(tmp_path):
    """Ended without a word (killed, os._exit), the notebook's metadata says "running"."""
    source = notebook(tmp_path / "ended.ipynb", "print(1)", "import os\nos._exit(0)", "2")
    out = tmp_path / "ended-out.ipynb"
    done = run(source, out)
    assert done.returncode == 0, done.stderr
    with open(out) as f:
        metadata = json.load(f)["metadata"]["run_notebook"]
    assert (metadata["status"], metadata["cells_run"], metadata["code_cells"]) == (
        "running", 1, 3)


def test_runner_collects_many_small_writes_in_linear_time():
    """80,000 small writes (a progress bar) once took 29 s: each write copied all the text
    gathered so far (`text += piece`). Now the pieces are joined once: no write adds."""

    class Piece(str):
        additions = 0

        def __add__(self, other):
            Piece.additions += 1
            return str.__add__(self, other)

        def __radd__(self, other):
            Piece.additions += 1
            return str.__add__(other, self)

    spec = importlib.util.spec_from_file_location("run_notebook", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    outputs = module.Outputs()
    for _ in range(1000):
        outputs.stream("stdout", Piece("step 12345/99999 "))
    outputs.stream("stderr", "a warning\n")
    stdout, stderr = outputs.finished()
    assert Piece.additions == 0
    assert stdout["text"] == ["step 12345/99999 " * 1000] and stderr["text"] == ["a warning\n"]


def test_pipeline_refuses_counts_below_one(capsys):
    """--repeat 0 failed after compiling; --rounds 0 measured the host side alone."""
    spec = importlib.util.spec_from_file_location(
        "pipeline", os.path.join(ROOT, "benchmarks", "pipeline.py"))
    pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)
    for option in ("--repeat", "--rounds", "--steps"):
        with pytest.raises(SystemExit) as stopped:
            pipeline.main(["--model", "resnet-tiny", "--image-size", "32", "--batch", "2",
                           "--steps", "1", "--json", option, "0"])
        assert stopped.value.code == 2
        assert f"{option} must be at least 1, not 0" in capsys.readouterr().err


def test_gpu_prep_keeps_the_wheel_when_the_download_fails(tmp_path):
    """gpu_prep.sh in a copy of benchmarks/: a new KERAS_VERSION that cannot be downloaded
    leaves the wheel there was; a relative SHARED_DATASETS is found from where it is called."""
    (tmp_path / "benchmarks").mkdir()
    script = tmp_path / "benchmarks" / "gpu_prep.sh"
    shutil.copy(os.path.join(ROOT, "benchmarks", "gpu_prep.sh"), script)
    wheels = tmp_path / ".whl"
    wheels.mkdir()
    for wheel in ("keras-3.15.1-py3-none-any.whl", "namex-0.1.0-py3-none-any.whl",
                  "optree-0.20.0-cp312-cp312-manylinux_2_28_x86_64.whl"):
        (wheels / wheel).write_text("a wheel")
    env = dict(os.environ, KERAS_VERSION="3.15.2", PYTHON="/bin/false")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 1 and "cannot download keras==3.15.2" in done.stderr
    assert (wheels / "keras-3.15.1-py3-none-any.whl").exists()
    shared = tmp_path / "elsewhere" / "datasets"
    shared.mkdir(parents=True)
    for name in ("cifar10-train.zip", "cifar10-test.zip"):
        (shared / name).write_text(name)
    sums = subprocess.run(["sha256sum", "cifar10-train.zip", "cifar10-test.zip"], cwd=shared,
                          capture_output=True, text=True, check=True).stdout
    (shared / "SHA256SUMS").write_text(sums)
    env = dict(os.environ, SHARED_DATASETS="datasets", PYTHON="/bin/false")
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env,
                          cwd=shared.parent, timeout=60)
    assert f".data/ matches {shared}/SHA256SUMS" in done.stdout, done.stderr
