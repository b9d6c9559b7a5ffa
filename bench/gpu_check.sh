#!/usr/bin/env bash
# The prepared GPU check: one short call on a lent GPU machine (at most 6 minutes of command time, so that a
# rerun fits in a 15-minute device budget with the machine's start), 3 files back. One verdict line per step,
# printed as the step finishes, in this order:
#   1. kernel probes: the kernels the guidance differentiates (attention forward + backward in fp16 at CLIP's
#      token counts, index_select's backward at cutout sizes, the ViT patch embeddings' and RN50's stem's
#      convolution backward, the secondary model's, pooling, nearest upsampling), each twice in deterministic
#      mode, compared bitwise and checked finite; which attention kernel ran     (bench/gpu_check.py probes)
#   2. disco-spec doctor --device cuda
#   3. every mode of the tiny specs twice: still with and without the secondary model, PLMS with 2 cut
#      batches, image prompts, init image + LPIPS, Perlin, 2D and 3D (2 frames each); pixel hashes compared,
#      every x̂₀ and statistic finite, the NaN guard never fired                 (bench/gpu_check.py modes)
#   4. DD's real architectures (seeded random weights, the render's loaders) at 1280x768, secondary model on
#      and off, 3 guided steps, twice in two processes: x̂₀'s SHA-256 equal, every x̂₀ finite, the NaN guard
#      never fired; peak memory beside `plan --resources`'s estimate      (bench/engine_step.py --hash-steps 3)
#   5. if 60 s remain: DD 5.2's reference step at the default (1280x768, secondary on; the shared bench's
#      dd_reference_step.py), and the ratio of disco-spec's s/step to it
# Results (3 files): gpu_check-<GPU name>-<date>.txt (the verdicts), .json, and -logs.tar.gz (every step's
# log and JSON lines), in $OUT when it is set (the device tool brings them back), else in bench/results/
# (RESULTS_DIR overrides). Exit 0 when every step passed, 1 otherwise; every step runs whatever the earlier
# ones gave. bench/gpu_speed.sh (the speed table) is the next call, once this one has passed.
#
# How to run it through the device tool. Once, on the development machine, in the repository root
# (the machine has torch 2.11, torchvision, timm, numpy, pillow, opencv, typer, rich, click but no
# internet; Python 3.12):
#     printf '/.ref/\n/.whl/\n' >> .git/info/exclude
#     mkdir -p .ref && cp ../shared/bench/* .ref/
#     bash bench/gpu_check.sh --fetch-wheels     # pip download/wheel into .whl/ (needs a package registry)
# then one device call, from the repository root:
#     run  command:   bash bench/gpu_check.sh
#          carry:     [".ref", ".whl"]
#          timeout_s: 400
# and copy the files it brings back into bench/results/ (they are named after the GPU and the date).
#
# Check the script on a CPU first (the same steps at tiny sizes; results in /tmp/disco-spec-gpu-check-cpu):
#     PYTHON=/path/to/venv/bin/python bash bench/gpu_check.sh --cpu [--quick]
# (--quick: a few probes, the still mode only, the tiny models for step 4, no reference: the suite's run.)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
source bench/gpu_env.sh
QUICK=0
ARGS=()
for a in "$@"; do if [ "$a" = --quick ]; then QUICK=1; else ARGS+=("$a"); fi; done
gpu_script_start gpu_check.sh 37 "${ARGS[@]}"
export DISCO_SPEC_CACHE="${DISCO_SPEC_CACHE:-/tmp/disco-spec-gpu-check-cache}"
WORK="$(mktemp -d /tmp/disco-spec-gpu-check.XXXXXX)"
LOGS="$WORK/logs"
mkdir -p "$LOGS"

if [ "$MODE" = gpu ]; then
    gpu_machine_start || exit 1
    # per-step caps (s); BUDGET caps them all together: the command ends within 6 minutes
    DOCTOR_STEPS=6 HASH_STEPS=3 T_PROBES=40 T_DOCTOR=60 T_MODES=100 T_REAL=65 T_REF=60 BUDGET=370
    REAL_ARGS=(--config real-default)
    REF_ARGS=(--device cuda --secondary on --width 1280 --height 768 --phase early --steps-timed 8)
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    DEVICE=cpu
    GPU_NAME="cpu-$(uname -m)"
    RES="${RESULTS_DIR:-${OUT:-/tmp/disco-spec-gpu-check-cpu}}"
    # tiny sizes: this mode checks the script, not a GPU
    DOCTOR_STEPS=3 HASH_STEPS=1 T_PROBES=120 T_DOCTOR=300 T_MODES=900 T_REAL=400 T_REF=600 BUDGET=3000
    REAL_ARGS=(--config real-default --size 64x64 --cutn-batches 1 --clips ViTB32)
    REF_ARGS=(--device cpu --tiny --width 64 --height 64 --steps-timed 1 --warmup 0)
fi
PROBE_ARGS=()
MODE_ARGS=()
if [ "$QUICK" = 1 ]; then
    PROBE_ARGS=(--quick) MODE_ARGS=(--quick) REAL_ARGS=(--config tiny)
fi
mkdir -p "$RES"
PREFIX="$(results_prefix gpu_check "$RES")"
SUMMARY="$PREFIX.txt"
: > "$SUMMARY"
DS=("$PYTHON" -m disco_spec.cli)
FAILED=0

verdict() {  # verdict NAME STATUS(0 pass, 1 fail, skip) DETAIL
    case "$2" in
        0) say "PASS  $1: $3" ;;
        skip) say "SKIP  $1: $3" ;;
        *) say "FAIL  $1: $3"; FAILED=1 ;;
    esac
}
last_json() { grep '^{' "$1" | tail -n 1; }  # the JSON line a Python step ends with

say "disco-spec GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), mode $MODE$([ "$QUICK" = 1 ] && echo ' (quick)'), device $DEVICE: $GPU_NAME"
say "code: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), torch $("$PYTHON" -c 'import torch; print(torch.__version__)' 2>&1)"

# 1. kernel probes
t0=$SECONDS
timeout "$(cap "$T_PROBES")" "$PYTHON" -W ignore bench/gpu_check.py probes --device "$DEVICE" "${PROBE_ARGS[@]}" \
    > "$LOGS/probes.log" 2>&1
rc=$?
grep '^  ' "$LOGS/probes.log"
verdict "kernel probes" "$rc" "exit $rc after $((SECONDS - t0)) s: $(grep -c '^  ok ' "$LOGS/probes.log") ok, $(grep -c '^  FAIL' "$LOGS/probes.log") failed; $(grep -m1 '^  attention kernels' "$LOGS/probes.log" | cut -c3-200)"

# 2. doctor
t0=$SECONDS
timeout "$(cap "$T_DOCTOR")" "${DS[@]}" doctor --device "$DEVICE" --steps "$DOCTOR_STEPS" > "$LOGS/doctor.txt" 2>&1
rc=$?
verdict doctor "$rc" "exit $rc after $((SECONDS - t0)) s: $(grep -m1 '^result' "$LOGS/doctor.txt" | cut -c1-200)"

# 3. every tiny mode twice
t0=$SECONDS
timeout "$(cap "$T_MODES")" "$PYTHON" -W ignore bench/gpu_check.py modes --device "$DEVICE" --out "$WORK/modes" \
    "${MODE_ARGS[@]}" > "$LOGS/modes.log" 2>&1
rc=$?
grep '^  ' "$LOGS/modes.log"
verdict "tiny modes x2" "$rc" "exit $rc after $((SECONDS - t0)) s: $(grep -c '^  ok ' "$LOGS/modes.log") mode(s) ok, $(grep -c '^  FAIL' "$LOGS/modes.log") failed"

# 4. the real architectures, secondary on and off, twice each in two processes
t0=$SECONDS
: > "$LOGS/real.jsonl"
for secondary in true false; do
    for i in 1 2; do
        timeout "$(cap "$T_REAL")" "$PYTHON" -W ignore bench/engine_step.py "${REAL_ARGS[@]}" --device "$DEVICE" \
            --hash-steps "$HASH_STEPS" --set "models.use_secondary_model=$secondary" --json-out "$LOGS/real.jsonl" \
            >> "$LOGS/real.log" 2>&1
        echo "--- secondary $secondary, run $i: exit $?" >> "$LOGS/real.log"
    done
done
real_cmp="$("$PYTHON" - "$LOGS/real.jsonl" <<'EOF' 2>&1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ok, parts = len(rows) == 4, []
for secondary in (True, False):
    pair = [r for r in rows if r["set"].get("models.use_secondary_model") is secondary]
    name = f"secondary {'on' if secondary else 'off'}"
    if len(pair) != 2:
        ok = False; parts.append(f"{name}: {len(pair)} of 2 runs finished (see real.log)"); continue
    a, b = pair
    same = a["sha256"] == b["sha256"]
    finite = a["x0_finite"] and b["x0_finite"]
    guard = a["nan_guard"] + b["nan_guard"]
    ok = ok and same and finite and guard == 0
    peak = "-" if a["peak_mem_gib"] is None else f"{a['peak_mem_gib']:.2f}"
    parts.append(f"{name}: {'identical' if same else 'DIFFERENT'} sha256 {a['sha256'][:12]}/{b['sha256'][:12]}, "
                 f"x̂₀ {'finite' if finite else 'NOT FINITE'}, NaN guard {int(guard)}x, {a['size']}, "
                 f"{a['s_per_step']:.3f} s/step, peak {peak} GiB (plan --resources {a['estimate_gib']:.2f} GiB)")
print("; ".join(parts))
sys.exit(0 if ok else 1)
EOF
)"
verdict "real architectures x2" "$?" "$real_cmp, $((SECONDS - t0)) s"

# 5. DD 5.2's reference step, if 60 s remain
t0=$SECONDS
if [ "$QUICK" = 1 ]; then
    verdict "DD reference" skip "--quick"
elif [ ! -f "$REF/dd_reference_step.py" ]; then
    verdict "DD reference" skip "no $REF/dd_reference_step.py (carry .ref: see the header)"
elif [ $((BUDGET - SECONDS)) -lt 70 ]; then
    verdict "DD reference" skip "$((BUDGET - SECONDS)) s left of the budget"
else
    timeout "$(cap "$T_REF")" "$PYTHON" "$REF/dd_reference_step.py" "${REF_ARGS[@]}" --json-out "$LOGS/ddref.jsonl" \
        > "$LOGS/ddref.log" 2>&1
    ref_rc=$?
    ratio="$("$PYTHON" - "$LOGS/real.jsonl" "$LOGS/ddref.jsonl" <<'EOF' 2>&1
import json, sys
eng = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
eng = [r for r in eng if r["set"].get("models.use_secondary_model") is True]
try:
    ref = [json.loads(l) for l in open(sys.argv[2]) if l.strip() and "sec_per_step_median" in l]
except OSError:
    ref = []
if not eng or not ref:
    print("no ratio: " + ("no disco-spec timing" if not eng else "no DD reference timing")); sys.exit(1)
ours, dd = min(r["s_per_step"] for r in eng), ref[0]["sec_per_step_median"]
print(f"disco-spec {ours:.3f} s/step, DD 5.2 reference {dd:.3f} s/step ({ref[0].get('width')}x{ref[0].get('height')}, "
      f"t >= 600), ratio disco-spec/DD = {ours / dd:.2f}")
EOF
)"
    ratio_rc=$?
    [ "$ref_rc" -ne 0 ] && ratio_rc=1
    verdict "DD reference" "$ratio_rc" "exit $ref_rc, $((SECONDS - t0)) s; $ratio"
fi

"$PYTHON" - "$SUMMARY" "$PREFIX.json" "$GPU_NAME" "$MODE" "$FAILED" "$SECONDS" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
checks = [{"status": l[:4], "ok": l.startswith("PASS"), "check": l[6:].split(": ", 1)[0], "detail": l[6:].split(": ", 1)[-1]}
          for l in lines if l.startswith(("PASS", "FAIL", "SKIP"))]
json.dump({"gpu": sys.argv[3], "mode": sys.argv[4], "ok": sys.argv[5] == "0", "seconds": int(sys.argv[6]),
           "checks": checks}, open(sys.argv[2], "w"), indent=2)
EOF
tar -czf "$PREFIX-logs.tar.gz" -C "$WORK" logs
say "results: $PREFIX.txt (+ .json, -logs.tar.gz), $SECONDS s"
rm -rf "$WORK"
exit "$FAILED"
