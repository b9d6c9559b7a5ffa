#!/usr/bin/env bash
# Regression renders for a GPU runner: render every spec in specs/regression/ and compare it with its
# golden manifest (byte-exact in the golden's environment, within a PSNR threshold elsewhere); write a
# JUnit XML report for the CI system. Exit 0 when every spec passes, 1 when one differs, 2 on bad input.
#
# Usage: runner/regress.sh [--update] [more `disco-spec regress` options, e.g. --psnr-threshold 35]
#   --update   write the golden files from this render instead of comparing (then review and commit them)
#
# Environment (all optional):
#   SPECS_DIR          specs to render                   (default: specs/regression)
#   GOLDEN_DIR         golden manifests and images       (default: $SPECS_DIR/golden)
#   REPORT_DIR         JUnit XML and the renders         (default: reports)
#   JUNIT              JUnit XML path                    (default: $REPORT_DIR/regress-junit.xml)
#   DISCO_SPEC         the command to run                (default: disco-spec)
#   DISCO_SPEC_CACHE   model cache (weights are fetched and verified there on first use; /cache in the image)
#   DISCO_SPEC_MODELS  registry names to fetch and verify before rendering, e.g. "512x512_diffusion_uncond_finetune_008100 ViTB32"
#   PSNR_DB            off-fingerprint PSNR threshold in dB (default: disco-spec's, 60; one grey level everywhere
#                      is 48.13 dB). Lower it only for goldens made on another device.
#   DOCTOR_ARGS        options of the `disco-spec doctor` run first (default: --device auto); DOCTOR=0 skips it
#
# `disco-spec doctor` runs first: it prints the device, versions and determinism settings, and renders the
# smoke spec twice; when those two renders differ, byte-exact regression cannot pass, so the job stops
# there with the doctor's exit code and its advice (docs/gpu-runner.md).
set -euo pipefail

SPECS_DIR="${SPECS_DIR:-specs/regression}"
GOLDEN_DIR="${GOLDEN_DIR:-$SPECS_DIR/golden}"
REPORT_DIR="${REPORT_DIR:-reports}"
JUNIT="${JUNIT:-$REPORT_DIR/regress-junit.xml}"
read -r -a DS <<< "${DISCO_SPEC:-disco-spec}"

shopt -s nullglob
specs=("$SPECS_DIR"/*.toml "$SPECS_DIR"/*.json)
shopt -u nullglob
if [ "${#specs[@]}" -eq 0 ]; then
    echo "runner/regress.sh: no spec files (*.toml, *.json) in $SPECS_DIR" >&2
    exit 2
fi

mkdir -p "$REPORT_DIR" "$(dirname "$JUNIT")"
echo "disco-spec regress: ${#specs[@]} spec(s) from $SPECS_DIR, goldens in $GOLDEN_DIR, cache ${DISCO_SPEC_CACHE:-(default)}"
if command -v nvidia-smi > /dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi

if [ "${DOCTOR:-1}" != "0" ]; then
    read -r -a DOCTOR_OPTS <<< "${DOCTOR_ARGS:---device auto}"
    doctor_status=0
    "${DS[@]}" doctor "${DOCTOR_OPTS[@]}" || doctor_status=$?
    if [ "$doctor_status" -ne 0 ]; then
        echo "runner/regress.sh: disco-spec doctor failed (exit $doctor_status): this machine does not render reproducibly, see above" >&2
        exit "$doctor_status"
    fi
fi

# Weights: fetched (downloads are verified against their pinned SHA-256) into the cache on first use;
# every cached file is checked again here, so a corrupted cache fails before anything renders.
if [ -n "${DISCO_SPEC_MODELS:-}" ]; then
    # shellcheck disable=SC2086 # a list of names
    "${DS[@]}" models fetch $DISCO_SPEC_MODELS
fi
"${DS[@]}" models verify

status=0
threshold=()
if [ -n "${PSNR_DB:-}" ]; then
    threshold=(--psnr-threshold "$PSNR_DB")
fi
"${DS[@]}" regress "${specs[@]}" --golden "$GOLDEN_DIR" --junit "$JUNIT" --out "$REPORT_DIR/renders" "${threshold[@]}" "$@" || status=$?
echo "JUnit report: $JUNIT"
exit "$status"
