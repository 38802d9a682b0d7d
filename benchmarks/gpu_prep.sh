#!/usr/bin/env bash
# Prepare here what benchmarks/gpu_check.sh needs on the lent GPU machine, which has JAX but
# no Keras and no network (`make gpu-prep` runs this):
#   .whl/   the Keras, namex and optree wheels for its Python 3.12 on x86-64
#   .data/  cifar10-train.zip and cifar10-test.zip, copied from ../shared/datasets
# Both are git-ignored: a device call takes them only when its carry names them. Then it
# prints what would travel (at most 64 MiB per call) and the call to make.
# Settings: KERAS_VERSION (3.15.1), SHARED_DATASETS (../shared/datasets), PYTHON (python3).
set -eu -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# a relative SHARED_DATASETS is relative to where this was called from, not to $ROOT
SHARED=${SHARED_DATASETS:-$ROOT/../shared/datasets}
case $SHARED in /*) ;; *) SHARED=$PWD/$SHARED ;; esac
cd "$ROOT"
PYTHON=${PYTHON:-python3}
# Keras 3.15.1 is the newest release in requirements.txt's range (keras>=3.3,<4); the
# GPU machine's JAX is 0.11. namex and optree are Keras's needs that the machine lacks
# (absl-py, h5py, ml-dtypes, numpy, packaging and rich are there).
WHEELS=("keras==${KERAS_VERSION:-3.15.1}" "namex==0.1.0" "optree==0.20.0")
LIMIT=$((64 * 1024 * 1024))

mkdir -p .whl
download=$(mktemp -d)
trap 'rm -rf "$download"' EXIT
for spec in "${WHEELS[@]}"; do
    name=${spec%%==*} version=${spec##*==}
    if compgen -G ".whl/$name-$version-*.whl" >/dev/null; then continue; fi
    # download first, then replace: a failed download leaves the wheel that was there
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d "$download" "$spec" || {
        echo "gpu-prep: cannot download $spec with $PYTHON (see above): .whl/ is as it was" >&2
        exit 1
    }
    rm -f .whl/"$name"-*.whl  # one version of each: two stop the whole install there
    mv "$download"/*.whl .whl/
done

mkdir -p .data
if [ -d "$SHARED" ]; then
    for file in cifar10-train.zip cifar10-test.zip; do
        [ -f "$SHARED/$file" ] || { echo "gpu-prep: $SHARED has no $file" >&2; continue; }
        cmp -s "$SHARED/$file" ".data/$file" 2>/dev/null || cp "$SHARED/$file" ".data/$file"
        chmod u+w ".data/$file"
    done
    if [ -f "$SHARED/SHA256SUMS" ]; then
        (cd .data && sha256sum --quiet -c "$SHARED/SHA256SUMS")
        echo "gpu-prep: .data/ matches $SHARED/SHA256SUMS"
    fi
else
    echo "gpu-prep: no $SHARED: .data/ stays as it is (put cifar10-train.zip and" \
        "cifar10-test.zip there, or set SHARED_DATASETS)" >&2
fi

# What travels: tracked and untracked-not-ignored files, plus the carried folders.
tree=$(git ls-files -z --cached --others --exclude-standard |
    xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
wheels=$(du -cb .whl | tail -1 | cut -f1)
data=$(du -cb .data | tail -1 | cut -f1)
total=$((tree + wheels + data))
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
echo "gpu-prep: .whl/ $(mib "$wheels") ($(ls .whl | tr '\n' ' '))"
echo "gpu-prep: .data/ $(mib "$data") ($(ls .data | tr '\n' ' '))"
echo "gpu-prep: working tree $(mib "$tree")"
echo "gpu-prep: travels $(mib "$total") of the 64 MiB a device call takes"
if [ "$total" -gt "$LIMIT" ]; then
    echo "gpu-prep: that is over the limit: the call would be refused" >&2
    exit 1
fi
notebooks=$(grep -l '\.fit(' notebooks/*.ipynb | sort | tr '\n' ' ')
cat <<EOF

The device call (one notebook's full profile takes up to 6 minutes, a call at most 10):
  run(command="bash benchmarks/gpu_check.sh \$OUT NOTEBOOK...", carry=[".whl", ".data"],
      timeout_s=600)
for example, with the notebooks that train (${notebooks% }):
EOF
for notebook in $notebooks; do
    echo "  run(command=\"bash benchmarks/gpu_check.sh \$OUT $notebook\"," \
        "carry=[\".whl\", \".data\"], timeout_s=600)"
done
echo "Both in one call when they fit in 570 s: bash benchmarks/gpu_check.sh \$OUT ${notebooks% }"
