#!/usr/bin/env bash
# Run the course's notebooks in the `full` profile on Keras's JAX backend, on a GPU machine
# with no network and no Jupyter, and collect what they show.
#
#   benchmarks/gpu_check.sh OUTDIR [NOTEBOOK...]
#   benchmarks/gpu_check.sh --bench OUTDIR [SPEC...]
#
# With --bench it runs `python -m course_lib.bench --pipeline --json` on each SPEC
# MODEL:BATCH:SIZE[:KEY=VALUE,...] (builder options), and the PyTorch reference
# (benchmarks/torch_reference.py, where torch is installed) on each torch:MODEL:BATCH:SIZE
# [:OPTION,...] (precision=mixed|float32, compile=yes|no, warmup=STEPS, device=NAME).
# The default: first the comparison with torch.compile, ResNet-18 with a CIFAR stem at
# 32 px and ResNet-50 (v1.5) at 224 px on both sides, then the issue's six networks
# (resnet20:512:32 allcnn_c:512:32 alexnet:256:227 vgg16:128:224 googlenet:256:224
# resnet50:256:224). It writes bench.json (each one's images/s for inference at batch 1
# and at BATCH, training on data already on the device and through the course's pipeline,
# FLOP/s and FLOPs utilisation, or its error) and gpu_check.log; GPU_CHECK_BENCH_STEPS
# (20) timed steps each.
# Without NOTEBOOKs it runs every notebook that trains (those that call `.fit(`). Into
# OUTDIR (created if missing) it writes, per notebook, the executed NAME.ipynb (figures as
# PNG), NAME.html and the NAME.json that the notebook's `course_lib.report.record(...)`
# writes (accuracy, time, images/s, device, versions); then gpu_check.json (every
# notebook's status, seconds, exit code, error, GPU and results, with the machine's versions)
# and gpu_check.log (all of the output). The exit status is 0 when every notebook ran,
# 1 when one failed, timed out or found no time left (the others still run), and 2 when
# nothing could run (no GPU, no Keras, bad arguments).
#
# The data come from COURSE_DATA_DIR (default .data/, filled by `make gpu-prep`). The
# Keras, namex and optree wheels in .whl/ (also from `make gpu-prep`) are installed into
# /tmp/site when this Python lacks them. Settings, from the environment:
#   COURSE_PROFILE      full (default); smoke or quick for a dry run on a CPU
#   COURSE_CACHE        /tmp/course-cache: prepared data and checkpoints, kept between
#                       calls while the machine is held
#   GPU_CHECK_BUDGET    570: seconds this whole call may take (one device call runs for at
#                       most 600 s); a notebook gets what is left, and one that would start
#                       with under GPU_CHECK_MIN (60) s left is not run ("no time")
#   GPU_CHECK_TIMEOUT   540: seconds one notebook may take
#   GPU_CHECK_RESUME    0: each notebook trains from scratch (its own checkpoints, those whose
#                       names start with its name or number, 07_resnet-... or 07_..., are
#                       deleted first); 1 resumes a run that an earlier call left unfinished
#   GPU_CHECK_HTML      1: also write NAME.html (0: skip it, one file fewer)
#   GPU_CHECK_ALLOW_CPU 0: refuse the full profile when JAX sees no GPU
#   PYTHON              the Python to use: .venv/bin/python if there is one, else python3
#   RUN_NOTEBOOK_DPI    80: resolution of the figures
# Seconds, steps and the DPI are whole numbers of at least 1, switches 0 or 1: anything else
# stops the script (exit 2) before it installs or runs anything. So do two notebooks of one
# name, and an OUTDIR where NAME.ipynb would replace the notebook itself (or a notebook this
# script did not write). At the start, the named notebooks' files from an earlier call
# (NAME.ipynb, .html, .json) and gpu_check.json are deleted from OUTDIR, so that nothing old
# is reported as new. A notebook that exits 0 before its last cell counts as failed.
#
# Dry run on a CPU: COURSE_PROFILE=smoke bash benchmarks/gpu_check.sh /tmp/gpu-out \
#   notebooks/01_alexnet.ipynb
set -u -o pipefail

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    exit "${1:-2}"
}
[ $# -ge 1 ] || usage 2
MODE=notebooks
case "$1" in
-h | --help) usage 0 ;;
--bench) MODE=bench; shift; [ $# -ge 1 ] || usage 2 ;;
-*) echo "unknown option $1" >&2; usage 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUTDIR=$(realpath -m -- "$1") || exit 2
shift

# The settings, checked before anything is installed or run: a typo must not cost a GPU call.
whole() {  # NAME DEFAULT UNIT: the value of $NAME (DEFAULT when unset), a whole number >= 1
    local value=${!1:-$2}
    if ! [[ $value =~ ^[0-9]{1,9}$ ]] || [ $((10#$value)) -lt 1 ]; then
        echo "gpu_check: $1=$value is not a whole number of $3 of at least 1: set it to" \
            "one (the default is $2) or unset it" >&2
        return 2
    fi
    echo $((10#$value))
}
switch() {  # NAME DEFAULT: the value of $NAME (DEFAULT when unset), 0 or 1
    local value=${!1:-$2}
    case $value in 0 | 1) echo "$value" ;; *)
        echo "gpu_check: $1=$value: set it to 0 (no) or 1 (yes), or unset it (default $2)" >&2
        return 2 ;;
    esac
}
BUDGET=$(whole GPU_CHECK_BUDGET 570 seconds) || exit 2
PER_NOTEBOOK=$(whole GPU_CHECK_TIMEOUT 540 seconds) || exit 2
MIN_LEFT=$(whole GPU_CHECK_MIN 60 seconds) || exit 2
BENCH_STEPS=$(whole GPU_CHECK_BENCH_STEPS 20 steps) || exit 2
RUN_NOTEBOOK_DPI=$(whole RUN_NOTEBOOK_DPI 80 "dots per inch") || exit 2
RESUME=$(switch GPU_CHECK_RESUME 0) || exit 2
HTML=$(switch GPU_CHECK_HTML 1) || exit 2
GPU_CHECK_ALLOW_CPU=$(switch GPU_CHECK_ALLOW_CPU 0) || exit 2
export RUN_NOTEBOOK_DPI GPU_CHECK_ALLOW_CPU
NOTEBOOKS=()
SPECS=()
if [ "$MODE" = bench ]; then
    SPECS=("$@")
    [ ${#SPECS[@]} -gt 0 ] || SPECS=(torch:resnet18_small:512:32
        resnet18:512:32:stem=small,num_classes=10 torch:resnet50:256:224
        resnet50:256:224:stride_in_3x3=True resnet20:512:32 allcnn_c:512:32 alexnet:256:227
        vgg16:128:224 googlenet:256:224 resnet50:256:224)
    set --
fi
for notebook in "$@"; do NOTEBOOKS+=("$(absolute "$notebook")"); done
# a torch: SPEC's options become torch_reference.py's arguments (in $TORCH_ARGS), or none
torch_options() {
    local option
    TORCH_ARGS=()
    for option in ${1//,/ }; do
        case $option in
        precision=mixed | precision=float32) TORCH_ARGS+=(--precision "${option#*=}") ;;
        compile=no | compile=false | compile=0) TORCH_ARGS+=(--no-compile) ;;
        compile=yes | compile=true | compile=1) ;;
        warmup=* | device=*) TORCH_ARGS+=("--${option%%=*}" "${option#*=}") ;;
        *)
            echo "gpu_check: torch: option '$option' is not one torch_reference.py takes:" \
                "precision=mixed|float32, compile=yes|no, warmup=STEPS, device=NAME" >&2
            return 2 ;;
        esac
    done
}
for spec in "${SPECS[@]}"; do
    case $spec in torch:*)
        IFS=: read -r _ _ _ _ options <<<"$spec"
        torch_options "$options" || exit 2 ;;
    esac
done
# the notebooks run in their own folder: paths given relative to here must become absolute
COURSE_DATA_DIR=$(absolute "${COURSE_DATA_DIR:-$ROOT/.data}")
COURSE_CACHE=$(absolute "${COURSE_CACHE:-/tmp/course-cache}")
case "${COURSE_PROFILE:=full}" in smoke | quick | full) ;; *)
    echo "COURSE_PROFILE=$COURSE_PROFILE is not a profile: smoke, quick or full" >&2; exit 2 ;;
esac
cd "$ROOT" || exit 2
if [ "$MODE" = notebooks ] && [ ${#NOTEBOOKS[@]} -eq 0 ]; then
    while IFS= read -r notebook; do NOTEBOOKS+=("$ROOT/$notebook"); done \
        < <(grep -l '\.fit(' notebooks/*.ipynb | sort)
fi
# Each notebook writes OUTDIR/NAME.ipynb, .html and .json: two of one NAME would overwrite
# each other, and OUTDIR must not hold the source itself or a notebook this script did not
# write (both would be replaced).
declare -A WRITER=()
for notebook in "${NOTEBOOKS[@]}"; do
    name=$(basename "$notebook" .ipynb)
    case $notebook in *.ipynb) ;; *)
        echo "gpu_check: $notebook is not a notebook (NAME.ipynb)" >&2; exit 2 ;;
    esac
    if [ -n "${WRITER[$name]:-}" ]; then
        echo "gpu_check: ${WRITER[$name]} and $notebook are both named $name: their" \
            "outputs would overwrite each other; run them in separate calls or OUTDIRs" >&2
        exit 2
    fi
    WRITER[$name]=$notebook
    output=$OUTDIR/$name.ipynb
    if [ "$(realpath -m -- "$output")" = "$(realpath -m -- "$notebook")" ]; then
        echo "gpu_check: OUTDIR $OUTDIR is $notebook's own folder: its output $name.ipynb" \
            "would replace the notebook itself; give another OUTDIR" >&2
        exit 2
    fi
    if [ -e "$output" ] && ! grep -q '"run_notebook": {' "$output" 2>/dev/null; then
        echo "gpu_check: $output is not an executed notebook that this script wrote, and" \
            "running $notebook would replace it; give another OUTDIR" >&2
        exit 2
    fi
done
mkdir -p "$OUTDIR" || exit 2
# What an earlier call left there for these notebooks goes first: whatever happens in this
# call (no time, a missing notebook, no GPU), gpu_check.json never reports old results.
rm -f "$OUTDIR/gpu_check.json"
[ "$MODE" = notebooks ] || rm -f "$OUTDIR/bench.json"
for notebook in "${NOTEBOOKS[@]}"; do
    name=$(basename "$notebook" .ipynb)
    rm -f -- "$OUTDIR/$name".ipynb "$OUTDIR/$name".html "$OUTDIR/$name".json \
        "$OUTDIR/$name".*.tmp
done

export KERAS_BACKEND=jax
export COURSE_PROFILE COURSE_DATA_DIR COURSE_CACHE COURSE_OFFLINE=1 COURSE_RESULTS_DIR=$OUTDIR
export MPLBACKEND=Agg PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
START=$(date +%s)
SCRATCH=$(mktemp -d /tmp/gpu-check.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT

# A notebook's needs that the GPU machine may lack: the reason to skip it, or nothing.
skip_reason() {
    case "$(basename "$1")" in
    00_*)
        "$PYTHON" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("nltk", "tensorflow_datasets")))' 2>/dev/null ||
            echo "trains nothing, and needs NLTK's WordNet and tensorflow-datasets' ILSVRC" \
                "class list, which this machine lacks"
        ;;
    esac
}

# Versions, devices and data, as JSON in $SCRATCH/machine.json; exit 2 when nothing can run.
preflight() {
    "$PYTHON" - "$SCRATCH/machine.json" <<'PY'
import json, os, platform, subprocess, sys
found = {"python": platform.python_version(), "executable": sys.executable,
         "host": platform.node()}
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    found["nvidia_smi"] = smi.stdout.strip().splitlines() if smi.returncode == 0 else []
except (OSError, subprocess.SubprocessError):
    found["nvidia_smi"] = []
try:
    import jax, jaxlib, keras, numpy
except Exception as error:  # noqa: BLE001
    import traceback
    traceback.print_exc()
    sys.exit(f"cannot import JAX and Keras: {type(error).__name__}: {error}")
found["versions"] = {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                     "keras": keras.__version__, "numpy": numpy.__version__}
devices = jax.devices()
found["jax_devices"] = [str(d) for d in devices]
gpus = [d.device_kind for d in devices if d.platform == "gpu"]
found["gpu"] = gpus[0] if gpus else None
import jax.numpy as jnp
found["jax_sum_check"] = float(jnp.ones((256, 256)).sum())  # the backend computes at all
data = os.environ["COURSE_DATA_DIR"]
found["data_dir"] = data
found["data_files"] = sorted(os.listdir(data)) if os.path.isdir(data) else []
for key in ("COURSE_PROFILE", "COURSE_CACHE", "COURSE_OFFLINE", "KERAS_BACKEND"):
    found[key] = os.environ.get(key)
with open(sys.argv[1], "w") as f:
    json.dump(found, f, indent=1)
print(json.dumps(found, indent=1))
if found["gpu"] is None and os.environ["COURSE_PROFILE"] == "full" \
        and os.environ.get("GPU_CHECK_ALLOW_CPU", "0") != "1":
    sys.exit("JAX sees no GPU: the full profile would take hours on this CPU. For a dry run "
             "set COURSE_PROFILE=smoke (or GPU_CHECK_ALLOW_CPU=1 to insist)")
PY
}

# gpu_check.json from the runs in $SCRATCH/runs.tsv and the files in OUTDIR.
summary() {
    "$PYTHON" - "$SCRATCH/runs.tsv" "$SCRATCH/machine.json" "$OUTDIR" "$ROOT" <<'PY'
import datetime, json, os, sys
runs_file, machine_file, outdir, root = sys.argv[1:5]
machine = {}
if os.path.exists(machine_file):
    with open(machine_file) as f:
        machine = json.load(f)
gpu = machine.get("gpu") or "cpu"
rows = []
if os.path.exists(runs_file):
    with open(runs_file) as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
notebooks = []
for path, status, seconds, code, limit, note in rows:
    name = os.path.splitext(os.path.basename(path))[0]
    inside = os.path.commonpath([path, root]) == root
    entry = {"notebook": os.path.relpath(path, root) if inside else path, "status": status,
             "seconds": float(seconds) if seconds else None,
             "exit_code": int(code) if code else None,
             "time_limit_s": int(limit) if limit else None, "gpu": gpu, "note": note or None}
    executed = os.path.join(outdir, name + ".ipynb")
    if os.path.exists(executed):
        try:
            with open(executed, encoding="utf-8") as f:
                nb = json.load(f)
            run = nb.get("metadata", {}).get("run_notebook", {})
            entry["cells_run"] = f"{run.get('cells_run')}/{run.get('code_cells')}"
            if status == "ok" and (run.get("status") != "ok"
                                   or run.get("cells_run") != run.get("code_cells")):
                # exit 0 part-way (os._exit(0) in a cell): the later cells never ran
                entry["status"] = "failed"
                entry["error"] = (f"exit 0 after {entry['cells_run']} code cells (its notebook "
                                  f"says {run.get('status')!r}): code cell "
                                  f"{(run.get('cells_run') or 0) + 1} ended the process without "
                                  "an error (os._exit?) and the cells after it never ran")
            for cell in nb["cells"]:
                for output in cell.get("outputs", []):
                    if output["output_type"] == "error":
                        where = ""  # the notebook's line that raised: its cell and code
                        lines = output["traceback"]
                        for i, line in enumerate(lines[:-1]):
                            if line.startswith('  File "<') and " cell " in line:
                                cell_name = line.split('"')[1].strip("<>")
                                where = f" in {cell_name}: {lines[i + 1].strip()}"
                        entry["error"] = f"{output['ename']}: {output['evalue']}{where}"[:2000]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            entry["error"] = f"the executed notebook cannot be read: {error}"
            if status == "ok":
                entry["status"] = "failed"
    elif status == "ok":
        entry["status"] = "failed"
        entry["error"] = f"it exited 0 but wrote no {name}.ipynb"
    results = os.path.join(outdir, name + ".json")
    if os.path.exists(results):
        entry["results_file"] = name + ".json"
        try:
            with open(results, encoding="utf-8") as f:
                recorded = json.load(f)
            if not isinstance(recorded, dict):
                raise ValueError(f"it holds a {type(recorded).__name__}, not an object")
            entry["results"] = recorded.get("results")
        except (OSError, ValueError) as error:  # one bad file must not lose the others
            entry["error"] = (f"its results file {name}.json cannot be read: {error}"
                              + (f"; {entry['error']}" if entry.get("error") else ""))
            if entry["status"] == "ok":
                entry["status"] = "failed"
    elif status == "ok":
        entry["note"] = "the notebook recorded no results (no course_lib.report.record call)"
    entry["files"] = sorted(f for f in os.listdir(outdir)
                            if os.path.splitext(f)[0] == name)
    notebooks.append(entry)
document = {
    "date": datetime.datetime.now().isoformat(" ", "seconds"),
    "profile": machine.get("COURSE_PROFILE"), "backend": machine.get("KERAS_BACKEND"),
    "gpu": gpu, "machine": machine, "notebooks": notebooks,
    "ok": all(n["status"] in ("ok", "skipped") for n in notebooks),
}
with open(os.path.join(outdir, "gpu_check.json"), "w") as f:
    json.dump(document, f, indent=1)
    f.write("\n")
print("notebook                          status      seconds  gpu")
for n in notebooks:
    seconds = "" if n["seconds"] is None else f"{n['seconds']:.1f}"
    print(f"{n['notebook']:33s} {n['status']:10s} {seconds:>8s}  {gpu}"
          + (f"  ({n.get('error') or n.get('note')})" if n.get("error") or n.get("note") else ""))
sys.exit(0 if document["ok"] else 1)
PY
}

# --bench: each SPEC through course_lib.bench or the torch reference, into bench.json.
bench() {
    local deadline=$((START + BUDGET)) failed=0 spec model batch size options left limit code
    local steps=$BENCH_STEPS option
    local -a command
    for spec in "${SPECS[@]}"; do
        IFS=: read -r model batch size options <<<"$spec"
        if [ "$model" = torch ]; then
            IFS=: read -r _ model batch size options <<<"$spec"
            torch_options "$options"  # checked at the start: it sets TORCH_ARGS
            command=("$PYTHON" "$ROOT/benchmarks/torch_reference.py" --model "$model"
                --steps "$steps" --json ${batch:+--batch "$batch"} ${size:+--image-size "$size"}
                "${TORCH_ARGS[@]}")
        else
            command=("$PYTHON" -m course_lib.bench --model "$model" --batch "${batch:-64}"
                ${size:+--image-size "$size"} --pipeline --json --steps "$steps")
            for option in ${options//,/ }; do command+=(--option "$option"); done
        fi
        left=$((deadline - $(date +%s)))
        limit=$((left < PER_NOTEBOOK ? left : PER_NOTEBOOK))
        if [ "$limit" -lt "$MIN_LEFT" ]; then
            echo "gpu_check: $spec: not started, ${left}s left"
            printf '%s\tno time\n' "$spec" >>"$SCRATCH/bench.tsv"
            failed=1
            continue
        fi
        echo "gpu_check: ==== bench $spec (time limit ${limit}s) ===="
        timeout -k 15 "$limit" "${command[@]}" >"$SCRATCH/bench.out" 2>"$SCRATCH/bench.err"
        code=$?
        cat "$SCRATCH/bench.out"  # into gpu_check.log too
        cat "$SCRATCH/bench.err" >&2
        if [ $code -eq 0 ]; then  # its result: the last line it printed (checked below)
            printf '%s\tok\t%s\n' "$spec" "$(tail -n 1 "$SCRATCH/bench.out" | tr '\t' ' ')" \
                >>"$SCRATCH/bench.tsv"
        else
            failed=1
            printf '%s\tfailed\t%s\n' "$spec" \
                "exit $code: $(tail -n 1 "$SCRATCH/bench.err" | tr '\t' ' ')" >>"$SCRATCH/bench.tsv"
        fi
    done
    "$PYTHON" - "$SCRATCH/bench.tsv" "$SCRATCH/machine.json" "$OUTDIR/bench.json" <<'PY' || failed=1
import datetime, json, sys
rows, machine_file, out = sys.argv[1:4]
with open(machine_file) as f:
    machine = json.load(f)
runs = []
with open(rows) as f:
    for line in f:  # each run on its own: one run's bad output must not lose the others
        spec, status, text = (line.rstrip("\n").split("\t", 2) + ["", ""])[:3]
        entry = {"spec": spec, "status": status}
        if status == "ok":
            try:
                entry["result"] = json.loads(text)
                if not isinstance(entry["result"], dict) or "training" not in entry["result"]:
                    raise ValueError("not a JSON object with a 'training' rate")
            except ValueError as error:
                entry = {"spec": spec, "status": "failed",
                         "error": f"its last line of output is not its result ({error}): "
                                  f"{text[:500]!r} (all of it is in gpu_check.log)"}
        else:
            entry["error"] = text
        runs.append(entry)
with open(out, "w") as f:
    json.dump({"date": datetime.datetime.now().isoformat(" ", "seconds"),
               "gpu": machine.get("gpu") or "cpu", "machine": machine, "runs": runs}, f, indent=1)
    f.write("\n")
def rate(value, width):
    return f"{value:{width},.0f}" if value else f"{'-':>{width}s}"


print(f"{'network':44s} {'batch 1':>9s} {'inference':>10s} {'training':>9s} "
      f"{'pipeline':>9s}  MFU  (images/s)")
for run in runs:
    r = run.get("result")
    if r is None:
        print(f"{run['spec']:44s} {run['status']}: {run['error']}")
        continue
    mfu = f"{r['mfu']:.0%}" if r.get("mfu") else "-"
    print(f"{run['spec']:44s} {rate(r.get('inference_batch1'), 9)} "
          f"{rate(r.get('inference'), 10)} {rate(r['training'], 9)} "
          f"{rate(r.get('pipeline'), 9)}  {mfu}")
sys.exit(0 if all(run["status"] == "ok" for run in runs) else 1)
PY
    echo "gpu_check: $(( $(date +%s) - START ))s in all; files in $OUTDIR:"
    ls -l "$OUTDIR"
    return $failed
}

main() {
    echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -n); output in $OUTDIR"
    echo "gpu_check: profile=$COURSE_PROFILE backend=$KERAS_BACKEND data=$COURSE_DATA_DIR" \
        "cache=$COURSE_CACHE budget=${BUDGET}s per-notebook=${PER_NOTEBOOK}s"
    echo "gpu_check: nvidia-smi -L:"
    if command -v nvidia-smi >/dev/null; then nvidia-smi -L 2>&1; else echo "  (no nvidia-smi)"; fi
    if [ ${#NOTEBOOKS[@]} -gt 2 ]; then
        echo "gpu_check: note: a device call brings back at most 8 files, and each notebook" \
            "writes 3 (.ipynb, .html, .json) beside gpu_check.json and gpu_check.log"
    fi

    if ! "$PYTHON" -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in ("keras", "optree", "namex")))' 2>/dev/null; then
        local site=${GPU_CHECK_SITE:-/tmp/site}
        if ! compgen -G ".whl/*.whl" >/dev/null; then
            echo "gpu_check: $PYTHON has no Keras and there is no .whl/ folder: run" \
                "'make gpu-prep' here and carry .whl" >&2
            return 2
        fi
        echo "gpu_check: installing $(ls .whl | tr '\n' ' ')into $site"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --upgrade --target "$site" .whl/*.whl || return 2
        export PYTHONPATH=$site:$PYTHONPATH
    fi
    preflight || return 2
    if [ "$MODE" = bench ]; then
        bench
        return
    fi

    local deadline=$((START + BUDGET)) failed=0 notebook
    for notebook in "${NOTEBOOKS[@]}"; do
        local name rel reason left limit t0 t1 seconds code status prefix note=""
        name=$(basename "$notebook" .ipynb)
        rel=${notebook#"$ROOT"/}
        if [ ! -f "$notebook" ]; then
            echo "gpu_check: $rel: no such notebook" >&2
            printf '%s\t%s\t\t\t\t%s\n' "$notebook" failed "no such file" >>"$SCRATCH/runs.tsv"
            failed=1
            continue
        fi
        reason=$(skip_reason "$notebook")
        if [ -n "$reason" ]; then
            echo "gpu_check: skipping $rel: $reason"
            printf '%s\t%s\t\t\t\t%s\n' "$notebook" skipped "$reason" >>"$SCRATCH/runs.tsv"
            continue
        fi
        left=$((deadline - $(date +%s)))
        limit=$((left < PER_NOTEBOOK ? left : PER_NOTEBOOK))
        if [ "$limit" -lt "$MIN_LEFT" ]; then
            note="not started: ${left}s left of this call's ${BUDGET}s budget; run it in another call"
            echo "gpu_check: $rel: $note"
            printf '%s\t%s\t\t\t\t%s\n' "$notebook" "no time" "$note" >>"$SCRATCH/runs.tsv"
            failed=1
            continue
        fi
        if [ "$RESUME" = 0 ]; then
            # this notebook's checkpoints only: they start with its name (07_resnet-...) or
            # its number (02_...); other notebooks' and imagenet-* ones stay
            prefix=$name
            [[ $name =~ ^[0-9]+_ ]] && prefix=${BASH_REMATCH[0]%_}
            rm -rf -- "$COURSE_CACHE/checkpoints/$prefix"[-_]*
        fi
        local html=()
        [ "$HTML" = 0 ] || html=(--html "$OUTDIR/$name.html")
        echo "gpu_check: ==== $rel (time limit ${limit}s) ===="
        t0=$(date +%s.%N)
        timeout -k 15 "$limit" "$PYTHON" "$ROOT/benchmarks/run_notebook.py" "$rel" \
            "$OUTDIR/$name.ipynb" "${html[@]}"
        code=$?
        t1=$(date +%s.%N)
        seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
        case $code in
        0) status=ok ;;
        124 | 137) status="timed out"; note="stopped after ${limit}s" ;;
        *) status=failed ;;
        esac
        [ "$status" = ok ] || failed=1
        echo "gpu_check: ==== $rel: $status in ${seconds}s (exit $code) ===="
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$notebook" "$status" "$seconds" "$code" "$limit" \
            "$note" >>"$SCRATCH/runs.tsv"
    done
    summary || failed=1  # 1 also when a notebook that exited 0 did not run all its cells
    echo "gpu_check: $(( $(date +%s) - START ))s in all; files in $OUTDIR:"
    ls -l "$OUTDIR"
    return $failed
}

main 2>&1 | tee "$OUTDIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
