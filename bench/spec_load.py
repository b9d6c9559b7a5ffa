#!/usr/bin/env python3
"""How long loading + validating a spec takes, as a user feels it (fresh process: imports included).

    python bench/spec_load.py            # prints a table: per example spec, median over 5 fresh processes
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = (
    "import time, sys; t0 = time.perf_counter();"
    "from disco_spec.spec.load import load_spec; t1 = time.perf_counter();"
    "load_spec(sys.argv[1]); t2 = time.perf_counter();"
    "print(t1 - t0, t2 - t1, 'torch' in sys.modules)"
)


def main() -> None:
    print(f"{'spec':<26} {'import s':>9} {'validate s':>11} {'total s':>8}  torch imported")
    for spec in sorted((ROOT / "specs").glob("*.toml")):
        imports, validates, torch = [], [], set()
        for _ in range(5):
            out = subprocess.run([sys.executable, "-c", CODE, str(spec)], capture_output=True, text=True, check=True)
            a, b, t = out.stdout.split()
            imports.append(float(a))
            validates.append(float(b))
            torch.add(t)
        imp, val = statistics.median(imports), statistics.median(validates)
        print(f"{spec.name:<26} {imp:>9.3f} {val:>11.4f} {imp + val:>8.3f}  {'/'.join(sorted(torch))}")


if __name__ == "__main__":
    main()
