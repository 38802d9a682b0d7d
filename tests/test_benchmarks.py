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
