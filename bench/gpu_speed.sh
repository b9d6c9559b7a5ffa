#!/usr/bin/env bash
# The prepared GPU speed measurement. It runs AFTER bench/gpu_check.sh has passed on the same kind of machine
# (that call checks that the renders are exact, finite and repeatable; this one only measures): one call of at
# most 5 minutes of command time, 3 files back, each table row printed as it finishes.
#   1. the table (bench/engine_step.py --vs-reference): DD 5.2's reference step (../shared/bench) and
#      disco-spec one after the other, per row: 1280x768 secondary model on (DD's default still),
#      1280x768 secondary model off, then disco-spec alone with the opt-in lever engine.batch_cut_batches =
#      true (the memory and time it trades), then 512x512 secondary on if time remains. s/step in both cut
#      regimes, peak GPU memory, the speed-up, and the multiple of the FLOP floor (torch.utils.flop_counter;
#      matmul throughput measured in the same call)
#   2. with GPU_SPEED_LEVERS=1 and time left: each speed lever on and off at 1280x768 (engine_step.py --levers)
# Results (3 files): gpu_speed-<GPU name>-<date>.txt (the summary and the table), -table.jsonl, and
# -logs.tar.gz (every process's log), in $OUT when it is set (the device tool brings them back), else in
# bench/results/ (RESULTS_DIR overrides). Exit 0 when the table is complete, 1 otherwise.
#
# How to run it through the device tool. Once, on the development machine, in the repository root:
#     printf '/.ref/\n/.whl/\n' >> .git/info/exclude
#     mkdir -p .ref && cp ../shared/bench/* .ref/
#     bash bench/gpu_speed.sh --fetch-wheels     # pip download/wheel into .whl/ (needs a package registry)
# then, after bench/gpu_check.sh has passed, one device call from the repository root:
#     run  command:   bash bench/gpu_speed.sh
#          carry:     [".ref", ".whl"]
#          timeout_s: 330
# and copy the files it brings back into bench/results/.
#
# Check the script on a CPU first (64x64, one step of each; results in /tmp/disco-spec-gpu-speed-cpu):
#     PYTHON=/path/to/venv/bin/python bash bench/gpu_speed.sh --cpu
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
source bench/gpu_env.sh
gpu_script_start gpu_speed.sh 27 "$@"
export DISCO_SPEC_CACHE="${DISCO_SPEC_CACHE:-/tmp/disco-spec-gpu-speed-cache}"
WORK="$(mktemp -d /tmp/disco-spec-gpu-speed.XXXXXX)"
LOGS="$WORK/logs"
mkdir -p "$LOGS"

if [ "$MODE" = gpu ]; then
    gpu_machine_start || exit 1
    # caps (s): the table, the levers; BUDGET keeps the whole command within 5 minutes
    T_TABLE=250 BUDGET=290
    TABLE_ARGS=(--rows dd-default,secondary-off,dd-default-batched,512 --steps 4 --warmup 1 --child-timeout 60)
    LEVER_ARGS=(--size 1280x768 --cutn-batches 4 --clips ViTB32,ViTB16,RN50 --steps 3 --rounds 1)
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    DEVICE=cpu
    GPU_NAME="cpu-$(uname -m)"
    RES="${RESULTS_DIR:-${OUT:-/tmp/disco-spec-gpu-speed-cpu}}"
    T_TABLE=900 BUDGET=3000
    TABLE_ARGS=(--rows smoke --steps 1 --warmup 0)
    LEVER_ARGS=(--size 64x64 --cutn-batches 2 --steps 1 --rounds 1)
fi
mkdir -p "$RES"
PREFIX="$(results_prefix gpu_speed "$RES")"
SUMMARY="$PREFIX.txt"
: > "$SUMMARY"
FAILED=0

say "disco-spec GPU speed, $(date -u +%Y-%m-%dT%H:%M:%SZ), mode $MODE, device $DEVICE: $GPU_NAME"
say "code: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"

# 1. the table against DD 5.2's reference step, each row shown as it finishes
t0=$SECONDS
timeout "$(cap "$T_TABLE")" "$PYTHON" -W ignore bench/engine_step.py --vs-reference --device "$DEVICE" \
    --reference "$REF/dd_reference_step.py" "${TABLE_ARGS[@]}" --json-out "$PREFIX-table.jsonl" \
    --workdir "$LOGS/table" 2>&1 | tee "$LOGS/table.log" | grep --line-buffered '^row: '
rc=${PIPESTATUS[0]}
[ "$rc" -ne 0 ] && FAILED=1
sed -n '/^Per-step time/,$p' "$LOGS/table.log" | tee -a "$SUMMARY"
say "$([ "$rc" -eq 0 ] && echo PASS || echo FAIL)  table: exit $rc after $((SECONDS - t0)) s"

# 2. the levers, if asked for and time is left
if [ "${GPU_SPEED_LEVERS:-}" = 1 ] && [ $((BUDGET - SECONDS)) -gt 90 ]; then
    timeout "$(cap 200)" "$PYTHON" -W ignore bench/engine_step.py --levers --device "$DEVICE" "${LEVER_ARGS[@]}" \
        --json-out "$LOGS/levers.jsonl" > "$LOGS/levers.log" 2>&1
    say "levers: exit $?"
    sed -n '/^Speed levers/,$p' "$LOGS/levers.log" | tee -a "$SUMMARY"
fi
tar -czf "$PREFIX-logs.tar.gz" -C "$WORK" logs
say "results: $PREFIX.txt (+ -table.jsonl, -logs.tar.gz), $SECONDS s"
rm -rf "$WORK"
exit "$FAILED"
