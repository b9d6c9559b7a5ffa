# Sourced by bench/gpu_check.sh and bench/gpu_speed.sh: what the lent GPU machine lacks, and how it gets it.
# The machine has torch, torchvision, timm, numpy, pillow, opencv, typer, rich and click, Python 3.12
# (x86-64), and no internet: the rest travels as wheels in $WHEELS (.whl/, carried by the device call),
# fetched once on the development machine. A script sources it from the repository root, then calls
# `gpu_script_start NAME HELP_LAST_LINE "$@"`.

# The shared bench's needs (open_clip, ftfy, wcwidth, resize_right, guided-diffusion-sdk) and disco-spec's
# (its base install).
PURE_WHEELS=(open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.2.13 resize_right==0.0.2 pydantic==2.14.4
    annotated-types==0.8.0 typing-inspection==0.4.5 typing_extensions==4.16.0 jsonschema==4.26.0
    jsonschema-specifications==2025.9.1 referencing==0.37.0 tomli_w==1.2.0 platformdirs==4.14.9
    rfc8785==0.1.4)
BINARY_WHEELS=(pydantic_core==2.50.5 rpds-py==2026.9.1)

fetch_wheels() {  # pip download/wheel into $WHEELS (needs a package registry); exits
    set -e
    mkdir -p "$WHEELS"
    local plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
                --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    "$PYTHON" -m pip download -q --no-deps "${plat[@]}" -d "$WHEELS" "${PURE_WHEELS[@]}" "${BINARY_WHEELS[@]}"
    "$PYTHON" -m pip wheel -q --no-deps -w "$WHEELS" guided-diffusion-sdk==1.0.0
    ls -l "$WHEELS"
    du -sh "$WHEELS"
    exit 0
}

install_wheels() {  # the wheels into /tmp/site; PYTHONPATH then finds them and this checkout
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl || { echo "installing $WHEELS/*.whl failed (fetch them first: see the header)" >&2; return 1; }
    export PYTHONPATH="/tmp/site:$ROOT"
}

results_prefix() {  # results_prefix KIND DIR: DIR/KIND-<GPU name>-<date>
    local slug
    slug="$(printf '%s' "$GPU_NAME" | tr -c 'A-Za-z0-9._-' '-' | sed 's/--*/-/g; s/^-//; s/-$//')"
    echo "$2/$1-$slug-$(date -u +%Y-%m-%d)"
}

gpu_script_start() {  # gpu_script_start NAME HELP_LAST_LINE ARGS...: MODE (gpu|cpu), ROOT, PYTHON, WHEELS, REF
    local name=$1 help_last=$2
    shift 2
    ROOT="$PWD"
    MODE=gpu
    case "${1:-}" in
        "") ;;
        --cpu) MODE=cpu ;;
        --fetch-wheels) MODE=fetch ;;
        -h|--help) sed -n "2,${help_last}p" "bench/$name"; exit 0 ;;
        *) echo "usage: bench/$name [--cpu | --fetch-wheels]" >&2; exit 2 ;;
    esac
    PYTHON="${PYTHON:-python3}"
    WHEELS="${WHEELS:-.whl}"
    [ "$MODE" = fetch ] && fetch_wheels
    REF=.ref
    [ -f "$REF/dd_reference_step.py" ] || REF=../shared/bench  # beside a developer's checkout
    export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8
}

gpu_machine_start() {  # on the GPU machine: the wheels installed; DEVICE, GPU_NAME, RES (where results go)
    install_wheels || return 1
    nvidia-smi -L || true
    DEVICE=cuda
    GPU_NAME="$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0))' 2>/dev/null || echo unknown-gpu)"
    RES="${RESULTS_DIR:-${OUT:-$ROOT/bench/results}}"
}

say() { echo "$*" | tee -a "$SUMMARY"; }  # a line for the screen and the summary file

cap() {  # cap WANT: WANT seconds, or what is left of BUDGET (keeping 10 s for the summary), at least 5
    local left=$((BUDGET - SECONDS - 10))
    [ "$left" -lt 5 ] && left=5
    echo $(( $1 < left ? $1 : left ))
}
