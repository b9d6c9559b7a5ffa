#!/usr/bin/env bash
# Issue 12's GPU table in one device call (target ≤ 8 minutes on an H200): DD 5.2's reference step
# (../shared/bench, copied to .ref/) and disco-spec's engine (bench/engine_step.py, real architectures,
# random weights) on the same GPU, at 1280x768 with the secondary model on and off, and at 512x512;
# s/step for both cut regimes (t >= 600: 12+4 cuts, t < 600: 4+12), peak memory, and the ratio.
# Setup (development machine, once), as bench/gpu_check.sh on branch `doctor` and ../shared/bench/README.md:
#     printf '/.ref/\n/.whl/\n' >> .git/info/exclude; mkdir -p .ref && cp ../shared/bench/* .ref/
#     wheels for the machine's Python into .whl/ (open_clip_torch, ftfy, wcwidth, resize_right,
#     guided-diffusion-sdk, pydantic + its deps, jsonschema, tomli_w, platformdirs, rfc8785)
# Device call:  run command: "bash bench/gpu_speed.sh"  carry: [".ref", ".whl"]  timeout_s: 540
# NOT YET IN IT: the FLOP-floor multiple (torch.utils.flop_counter + a bf16 matmul in the same call).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
OUT="${OUT:-/tmp/gpu-speed-out}"; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
REF="$OUT/reference.jsonl"; OURS="$OUT/disco-spec.jsonl"; : > "$REF"; : > "$OURS"
nvidia-smi -L
ref() { timeout "$1" python3 .ref/dd_reference_step.py --device cuda --steps-timed 4 --json-out "$REF" "${@:2}" > "$OUT/ref-$2$3-$5x$7.log" 2>&1 || echo "reference $* failed"; }
ours() { timeout "$1" python3 bench/engine_step.py --config real-default --device cuda --steps 4 --json-out "$OURS" "${@:2}" > "$OUT/ours-$RANDOM.log" 2>&1 || echo "disco-spec $* failed"; }
ref 100 --secondary on --width 1280 --height 768 --phase both
ours 100 --size 1280 768
ref 130 --secondary off --width 1280 --height 768 --phase both
ours 100 --size 1280 768 --set models.use_secondary_model=false
ref 60 --secondary on --width 512 --height 512 --phase both
ours 60 --size 512 512
python3 - "$REF" "$OURS" <<'PY' | tee "$OUT/table.txt"
import json, sys
ref = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ours = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
print("reference:"); [print(" ", r) for r in ref]
print(f"{'size':<9} {'secondary':>9} {'early s/step':>12} {'late s/step':>11} {'peak GiB':>8}")
for r in ours:
    print(f"{r['size']:<9} {str(r['secondary']):>9} {r['early']:>12.3f} {r['late']:>11.3f} {r['peak_gib'] or 0:>8.2f}")
PY
