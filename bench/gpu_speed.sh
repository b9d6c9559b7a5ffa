#!/usr/bin/env bash
# The prepared GPU speed measurement (issue 12): one call of at most 8 minutes on a lent GPU machine.
#   1. exactness: DD's real architectures (seeded random weights) at 1280x768 with DD's default cuts and
#      every default speed lever on, 5 guided steps, twice in two processes; the SHA-256 of x̂₀ compared
#      (bench/engine_step.py --config real-default --hash-steps 5)
#   2. the table (bench/engine_step.py --vs-reference): DD 5.2's reference step (../shared/bench) and
#      disco-spec one after the other, per row: 1280x768 secondary model on (DD's default still),
#      1280x768 secondary model off, 512x512 secondary on. s/step in both cut regimes, peak GPU memory,
#      the speed-up, and the multiple of the FLOP floor (torch.utils.flop_counter; bf16 matmul throughput
#      measured in the same call); last, disco-spec alone with engine.batch_cut_batches = false (DD's loop
#      over cut batches: the peak memory and time that batching trades)
#   3. with GPU_SPEED_LEVERS=1 and time left: each speed lever on and off at 1280x768 (engine_step.py --levers)
# Results: gpu_speed-<GPU name>-<date>.txt (the summary and the table), -table.jsonl, -hash.jsonl and
# the logs, in $OUT when it is set (the device tool brings them back), else in bench/results/
# (RESULTS_DIR overrides). Exit 0 when the runs were identical and the table complete, 1 otherwise.
#
# How to run it through the device tool. Once, on the development machine, in the repository root:
#     printf '/.ref/\n/.whl/\n' >> .git/info/exclude
#     mkdir -p .ref && cp ../shared/bench/* .ref/
#     bash bench/gpu_speed.sh --fetch-wheels     # pip download/wheel into .whl/ (needs a package registry)
# then one device call, from the repository root:
#     run  command:   bash bench/gpu_speed.sh
#          carry:     [".ref", ".whl"]
#          timeout_s: 540
# and copy the files it brings back into bench/results/.
#
# Check the script on a CPU first (64x64, one step of each; ~10 minutes; results in /tmp/disco-spec-gpu-speed-cpu):
#     PYTHON=/path/to/venv/bin/python bash bench/gpu_speed.sh --cpu
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
source bench/gpu_env.sh
gpu_script_start gpu_speed.sh 28 "$@"
export DISCO_SPEC_CACHE="${DISCO_SPEC_CACHE:-/tmp/disco-spec-gpu-speed-cache}"

if [ "$MODE" = gpu ]; then
    gpu_machine_start || exit 1
    # caps (s): the hash runs, the table, the levers; BUDGET keeps the whole call within 8 minutes
    T_HASH=60 T_TABLE=380 BUDGET=470
    HASH_ARGS=(--config real-default --hash-steps 5)
    TABLE_ARGS=(--rows dd-default,secondary-off,512,dd-default-unbatched --steps 5 --warmup 2 --child-timeout 150)
    LEVER_ARGS=(--size 1280x768 --cutn-batches 4 --clips ViTB32,ViTB16,RN50 --steps 3 --rounds 2)
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    DEVICE=cpu
    GPU_NAME="cpu-$(uname -m)"
    RES="${RESULTS_DIR:-${OUT:-/tmp/disco-spec-gpu-speed-cpu}}"
    T_HASH=300 T_TABLE=900 BUDGET=3000
    HASH_ARGS=(--config real-default --hash-steps 1 --size 64x64 --cutn-batches 1 --clips ViTB32)
    TABLE_ARGS=(--rows smoke --steps 1 --warmup 0)
    LEVER_ARGS=(--size 64x64 --cutn-batches 2 --steps 1 --rounds 1)
fi
mkdir -p "$RES"
PREFIX="$(results_prefix gpu_speed "$RES")"
SUMMARY="$PREFIX.txt"
: > "$SUMMARY"
: > "$PREFIX-hash.jsonl"
FAILED=0

say "disco-spec GPU speed, $(date -u +%Y-%m-%dT%H:%M:%SZ), mode $MODE, device $DEVICE: $GPU_NAME"
say "code: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"

# 1. exactness: the same render twice, every default lever on
t0=$SECONDS
for i in 1 2; do
    timeout "$(cap "$T_HASH")" "$PYTHON" -W ignore bench/engine_step.py --device "$DEVICE" "${HASH_ARGS[@]}" \
        --json-out "$PREFIX-hash.jsonl" >> "$PREFIX-hash.log" 2>&1
    echo "--- hash run $i: exit $?" >> "$PREFIX-hash.log"
done
hash_cmp="$("$PYTHON" - "$PREFIX-hash.jsonl" <<'PY' 2>&1
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if len(rows) != 2:
    print(f"{len(rows)} of 2 runs finished (see the hash log)"); sys.exit(1)
a, b = rows
print(("identical" if a["sha256"] == b["sha256"] else "DIFFERENT")
      + f" sha256 {a['sha256'][:16]} / {b['sha256'][:16]} after {a['hash_steps']} guided steps at {a['size']}, "
      f"{a['s_per_step']:.3f} / {b['s_per_step']:.3f} s/step, peak {a['peak_mem_gib']} GiB")
sys.exit(0 if a["sha256"] == b["sha256"] else 1)
PY
)"
rc=$?
[ "$rc" -ne 0 ] && FAILED=1
say "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)  run to run: $hash_cmp, $((SECONDS - t0)) s"

# 2. the table against DD 5.2's reference step
t0=$SECONDS
timeout "$(cap "$T_TABLE")" "$PYTHON" -W ignore bench/engine_step.py --vs-reference --device "$DEVICE" \
    --reference "$REF/dd_reference_step.py" "${TABLE_ARGS[@]}" --json-out "$PREFIX-table.jsonl" \
    --workdir "$PREFIX-table-logs" > "$PREFIX-table.log" 2>&1
rc=$?
[ "$rc" -ne 0 ] && FAILED=1
sed -n '/^Per-step time/,$p' "$PREFIX-table.log" | tee -a "$SUMMARY"
say "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)  table: exit $rc after $((SECONDS - t0)) s (each process's log in $PREFIX-table-logs/)"

# 3. the levers, if asked for and time is left
if [ "${GPU_SPEED_LEVERS:-}" = 1 ] && [ $((BUDGET - SECONDS)) -gt 90 ]; then
    timeout "$(cap 300)" "$PYTHON" -W ignore bench/engine_step.py --levers --device "$DEVICE" "${LEVER_ARGS[@]}" \
        --json-out "$PREFIX-levers.jsonl" > "$PREFIX-levers.log" 2>&1
    say "levers: exit $?"
    sed -n '/^Speed levers/,$p' "$PREFIX-levers.log" | tee -a "$SUMMARY"
fi
say "results: $PREFIX.txt (+ -hash.jsonl/.log, -table.jsonl/.log/-logs/$([ "${GPU_SPEED_LEVERS:-}" = 1 ] && echo ', -levers.jsonl/.log'))"
exit "$FAILED"
