#!/usr/bin/env bash
# The issue-16 benchmarks (and issue 17's loader-workers benchmark) on one CUDA GPU, offline,
# within 9 minutes, and one JSON of figures.
#
#   bash benchmarks/gpu.sh                # figures in benchmarks/gpu-results/figures.json
#   OUT=/some/dir bash benchmarks/gpu.sh
#
# Needs only what travels with the working tree plus the machine's own python and CUDA torch:
# a venv with --system-site-packages (so the preinstalled torch is used), this repository
# installed into it without dependencies (or, where that cannot build offline, the source tree
# on PYTHONPATH with a carried itr_harness.egg-info, whose entry points register the built-in
# plugins), and, if the folder benchmarks/wheels exists, every wheel in it (the harness's
# pure-Python dependencies, for a machine that lacks them; see benchmarks/README.md, "GPU").
# Each benchmark file runs under its own time limit, so the whole script stays within 9
# minutes; a file that hits its limit keeps no figures.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/gpu-results}"
VENV="${VENV:-.venv-gpu}"
mkdir -p "$OUT"

python3 -m venv --system-site-packages "$VENV"
# shellcheck disable=SC1091  # created just above
. "$VENV/bin/activate"
if [ -d benchmarks/wheels ]; then
    pip install --no-index --no-deps --quiet benchmarks/wheels/*.whl
fi
if ! pip install --no-index --no-deps --no-build-isolation --quiet -e . >"$OUT/pip-install.log" 2>&1; then
    if [ ! -d itr_harness.egg-info ]; then
        echo "pip install -e . failed offline (see $OUT/pip-install.log) and no itr_harness.egg-info was carried" >&2
        exit 1
    fi
    echo "pip install -e . failed offline (see $OUT/pip-install.log); using the source tree and itr_harness.egg-info"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

python - <<'CHECK'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__}: CUDA is not available")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
CHECK

export ITR_BENCH_DEVICE=cuda HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
status=0
run() {  # run SECONDS FILE [NAME=VALUE ...]: one benchmark file under a time limit
    local seconds=$1 file=$2
    shift 2
    local name
    name=$(basename "$file" .py)
    echo "== $name (limit ${seconds} s) $*"
    env "$@" timeout --kill-after=10 "$seconds" python -m pytest "$file" --benchmark-only -p no:cacheprovider -s \
        --benchmark-json="$OUT/$name.json" || status=1
}
run 50 benchmarks/test_cross_attention_rate.py
run 50 benchmarks/test_cross_attention_training.py
run 80 benchmarks/test_rerank_scale.py ITR_BENCH_FULL=1
run 110 benchmarks/test_eval_every_method.py ITR_BENCH_FULL=1
run 120 benchmarks/test_rerank_trained.py ITR_BENCH_FULL=1
run 90 benchmarks/test_loader_workers.py ITR_BENCH_FULL=1

python - "$OUT" <<'MERGE'
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
figures = {path.stem: json.loads(path.read_text()) for path in sorted(out.glob("test_*.json"))}
(out / "figures.json").write_text(json.dumps(figures, indent=1))
print(f"figures of {len(figures)} benchmark files: {(out / 'figures.json').resolve()}")
MERGE
exit "$status"
