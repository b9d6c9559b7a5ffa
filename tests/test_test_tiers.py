"""The README's two test commands: the inner loop leaves out what needs a server, a cluster, a browser or
minutes, yet still runs at least one test of every test module, so every package is exercised."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_command(label: str) -> str:
    """The command under the README line that starts with `label` (an indented code line)."""
    m = re.search(rf"^{re.escape(label)}.*?\n\n    (python -m pytest[^\n]*)", README, re.M | re.S)
    assert m, f"README has no '{label}' command"
    return m.group(1)


def test_readme_commands_use_only_registered_markers():
    registered = {m.split(":")[0] for m in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"]["markers"]}
    assert registered == {"render", "mlflow_server", "ray", "browser", "slow"}
    inner = _readme_command("**Inner loop**")
    words = set(re.findall(r"\b[a-z_]+\b", re.search(r'-m "([^"]+)"', inner).group(1)))
    assert {"slow", "mlflow_server", "ray", "browser"} <= words <= registered | {"not", "and", "or"}
    assert " -m \"" not in _readme_command("**Test**")  # the full suite deselects nothing
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_command("**Test**") in ci


@pytest.mark.slow
def test_inner_loop_keeps_a_test_of_every_module():
    inner = _readme_command("**Inner loop**")
    expr = re.search(r'-m "([^"]+)"', inner).group(1)
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-m", expr, "tests"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    selected = {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}
    # A module whose every test needs a service the inner loop leaves out (its `pytestmark`) is the exception.
    service = re.compile(r"^pytestmark = .*pytest\.mark\.(ray|mlflow_server|browser)\b", re.M)
    modules = {f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py")
               if not service.search(p.read_text(encoding="utf-8"))}
    assert "tests/test_render_still.py" in modules and "tests/test_ray.py" not in modules
    assert modules - selected == set(), "test modules with no test in the inner loop"
