#!/usr/bin/env bash
# The prepared GPU check (issue 11): one call of at most 8 minutes on a lent GPU machine (NVIDIA H200).
#   1. disco-spec doctor --device cuda         (the smoke spec at 6 steps, twice, through render())
#   2. the tiny smoke render twice               (`disco-spec render specs/smoke.toml`, all 12 steps,
#                                                 manifest ids and image hashes compared)
#   3. DD's real architectures, random (seeded) weights, 1280x768, DD's default cuts (4 cut batches,
#      ViT-B/32 + ViT-B/16 + RN50), 5 guided steps, twice in two processes: the SHA-256 of x̂₀ after the
#      5 steps compared, s/step printed   (bench/engine_step.py --config real-default --hash-steps 5)
#   4. DD 5.2's reference step (the shared bench: dd_reference_step.py with run_dd_reference.sh's
#      configuration (a): 1280x768, secondary model on, t >= 600) at the same settings; both s/step and
#      their ratio printed. GPU_CHECK_DDREF=script runs the whole run_dd_reference.sh instead (its three
#      configurations, up to 320 s more: then the call may pass 8 minutes).
# Results: gpu_check-<GPU name>-<date>.txt (the summary), .json, and one log per step, in $OUT when it
# is set (the device tool brings them back), else in bench/results/ (RESULTS_DIR overrides). Exit 0 when
# every check passed, 1 otherwise; every step runs whatever the earlier ones gave.
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
#          timeout_s: 540
# and copy the files it brings back into bench/results/ (they are named after the GPU and the date).
#
# Check the script on a CPU first (tiny sizes, the same steps; results in /tmp/disco-spec-gpu-check-cpu):
#     PYTHON=/path/to/venv/bin/python bash bench/gpu_check.sh --cpu
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
source bench/gpu_env.sh
gpu_script_start gpu_check.sh 30 "$@"
export DISCO_SPEC_CACHE="${DISCO_SPEC_CACHE:-/tmp/disco-spec-gpu-check-cache}"
WORK="$(mktemp -d /tmp/disco-spec-gpu-check.XXXXXX)"

if [ "$MODE" = gpu ]; then
    gpu_machine_start || exit 1
    # per-step caps (s); BUDGET caps them all together so that the call ends within 8 minutes
    DOCTOR_STEPS=6 SMOKE_STEPS=12 HASH_STEPS=5 REAL_ARGS=() T_DOCTOR=90 T_SMOKE=60 T_REAL=110 T_REF=80 BUDGET=465
    REF_ARGS=(--device cuda --secondary on --width 1280 --height 768 --phase early --steps-timed 8)
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    DEVICE=cpu
    GPU_NAME="cpu-$(uname -m)"
    RES="${RESULTS_DIR:-${OUT:-/tmp/disco-spec-gpu-check-cpu}}"
    # tiny sizes: this mode checks the script, not a GPU
    DOCTOR_STEPS=3 SMOKE_STEPS=4 HASH_STEPS=1 T_DOCTOR=300 T_SMOKE=300 T_REAL=400 T_REF=600 BUDGET=3000
    REAL_ARGS=(--size 64x64 --cutn-batches 1 --clips ViTB32)
    REF_ARGS=(--device cpu --tiny --width 64 --height 64 --steps-timed 1 --warmup 0)
fi
mkdir -p "$RES"
PREFIX="$(results_prefix gpu_check "$RES")"
SUMMARY="$PREFIX.txt"
: > "$SUMMARY"
: > "$PREFIX-engine.jsonl"
: > "$PREFIX-ddref.jsonl"
DS=("$PYTHON" -m disco_spec.cli)
FAILED=0

verdict() {  # verdict NAME OK(0/1) DETAIL
    if [ "$2" -eq 0 ]; then say "PASS  $1: $3"; else say "FAIL  $1: $3"; FAILED=1; fi
}

say "disco-spec GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), mode $MODE, device $DEVICE: $GPU_NAME"
say "code: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"

# 1. doctor
t0=$SECONDS
timeout "$(cap "$T_DOCTOR")" "${DS[@]}" doctor --device "$DEVICE" --steps "$DOCTOR_STEPS" > "$PREFIX-doctor.txt" 2>&1
rc=$?
cat "$PREFIX-doctor.txt"
verdict doctor "$rc" "exit $rc after $((SECONDS - t0)) s: $(grep -m1 '^result' "$PREFIX-doctor.txt" | cut -c14- | cut -d: -f1)"

# 2. the smoke render twice, through the CLI (no tracking)
t0=$SECONDS
smoke="$WORK/smoke.toml"
sed "s/^steps = 12$/steps = $SMOKE_STEPS/" specs/smoke.toml > "$smoke"
cp -r specs/assets "$WORK/assets" 2> /dev/null || true
smoke_rc=0
for i in 1 2; do
    timeout "$(cap "$T_SMOKE")" "${DS[@]}" render "$smoke" --no-track -q --run-dir "$WORK/smoke-$i" >> "$PREFIX-smoke.log" 2>&1 \
        || smoke_rc=$?
done
smoke_cmp="$("$PYTHON" - "$WORK/smoke-1" "$WORK/smoke-2" <<'EOF' 2>&1
import json, sys
from pathlib import Path
runs = []
for d in sys.argv[1:]:
    m = json.loads((Path(d) / "manifest.json").read_text())
    runs.append((m["id"], {f["path"]: f["sha256"] for f in m["files"] if f["path"].endswith(".png")}))
(id1, f1), (id2, f2) = runs
diff = [p for p in sorted(set(f1) | set(f2)) if f1.get(p) != f2.get(p)]
print(("identical" if id1 == id2 and not diff else "DIFFERENT") + f": manifest {id1[:16]} / {id2[:16]}, "
      + (f"{len(f1)} PNG(s) equal" if not diff else "differing: " + ", ".join(diff)))
sys.exit(0 if id1 == id2 and not diff else 1)
EOF
)"
cmp_rc=$?
[ "$smoke_rc" -ne 0 ] && cmp_rc=1 && smoke_cmp="render exit $smoke_rc (log: $PREFIX-smoke.log); $smoke_cmp"
verdict "smoke render x2 ($SMOKE_STEPS steps)" "$cmp_rc" "$smoke_cmp, $((SECONDS - t0)) s"

# 3. real architectures, random seeded weights, 5 guided steps, twice (two processes)
t0=$SECONDS
for i in 1 2; do
    timeout "$(cap "$T_REAL")" "$PYTHON" -W ignore bench/engine_step.py --config real-default --device "$DEVICE" \
        --hash-steps "$HASH_STEPS" "${REAL_ARGS[@]}" --json-out "$PREFIX-engine.jsonl" >> "$PREFIX-engine.log" 2>&1
    echo "--- engine run $i: exit $?" >> "$PREFIX-engine.log"
done
grep -v '^---' "$PREFIX-engine.log" | tail -n 4
engine_cmp="$("$PYTHON" - "$PREFIX-engine.jsonl" <<'EOF' 2>&1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if len(rows) != 2:
    print(f"{len(rows)} of 2 runs finished (see the engine log)"); sys.exit(1)
a, b = rows
same = a["sha256"] == b["sha256"]
print(("identical" if same else "DIFFERENT") + f" sha256 {a['sha256'][:16]} / {b['sha256'][:16]}, {a['size']}, "
      f"{a['hash_steps']} guided steps, {a['s_per_step']:.3f} / {b['s_per_step']:.3f} s/step")
sys.exit(0 if same else 1)
EOF
)"
verdict "real architectures x2" "$?" "$engine_cmp, $((SECONDS - t0)) s"

# 4. DD 5.2's reference step at the same settings, and the ratio
t0=$SECONDS
if [ "${GPU_CHECK_DDREF:-}" = script ] && [ "$MODE" = gpu ]; then
    OUT="$WORK/ddref" WHEELS="$WHEELS" bash "$REF/run_dd_reference.sh" > "$PREFIX-ddref.log" 2>&1
    ref_rc=$?
    head -n 1 "$WORK/ddref/summary.jsonl" > "$PREFIX-ddref.jsonl" 2> /dev/null  # (a): 1280x768, secondary on
else
    timeout "$(cap "$T_REF")" "$PYTHON" "$REF/dd_reference_step.py" "${REF_ARGS[@]}" --json-out "$PREFIX-ddref.jsonl" \
        > "$PREFIX-ddref.log" 2>&1
    ref_rc=$?
fi
tail -n 3 "$PREFIX-ddref.log" | cut -c1-300
ratio="$("$PYTHON" - "$PREFIX-engine.jsonl" "$PREFIX-ddref.jsonl" <<'EOF' 2>&1
import json, sys
eng = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ref = [json.loads(l) for l in open(sys.argv[2]) if l.strip() and "sec_per_step_median" in l]
if not eng or not ref:
    print("no ratio: " + ("no disco-spec timing" if not eng else "no DD reference timing")); sys.exit(1)
ours = min(r["s_per_step"] for r in eng)
dd = ref[0]["sec_per_step_median"]
print(f"disco-spec {ours:.3f} s/step, DD 5.2 reference {dd:.3f} s/step "
      f"({ref[0].get('width')}x{ref[0].get('height')}, t >= 600), ratio disco-spec/DD = {ours / dd:.2f}")
EOF
)"
ratio_rc=$?
[ "$ref_rc" -ne 0 ] && ratio_rc=1
verdict "DD reference" "$ratio_rc" "exit $ref_rc, $((SECONDS - t0)) s; $ratio"

"$PYTHON" - "$SUMMARY" "$PREFIX.json" "$GPU_NAME" "$MODE" "$FAILED" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
checks = [{"ok": l.startswith("PASS"), "check": l[6:].split(": ", 1)[0], "detail": l[6:].split(": ", 1)[-1]}
          for l in lines if l.startswith(("PASS", "FAIL"))]
json.dump({"gpu": sys.argv[3], "mode": sys.argv[4], "ok": sys.argv[5] == "0", "checks": checks},
          open(sys.argv[2], "w"), indent=2)
EOF
say "results: $PREFIX.txt (+ .json, -doctor.txt, -smoke.log, -engine.log/.jsonl, -ddref.log/.jsonl)"
rm -rf "$WORK"
exit "$FAILED"
