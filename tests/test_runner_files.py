"""The GPU runner builds and runs: runner/Dockerfile, runner/regress.sh and .github/workflows/*.yml name only
modules that import, files that exist and `disco-spec` commands and options the CLI has (the Dockerfile's
`import disco_spec.engine.runner` outlived that module's move to disco_spec/run/loop.py; nothing read it). And
`disco-spec regress` goes on when one spec's render crashes: that spec is an <error> in the JUnit report."""

from __future__ import annotations

import ast
import importlib.util
import re
import shlex
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer

from cli_helpers import run_cli
from disco_spec.cli.app import app
from disco_spec.repro import regress as regress_module

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "runner" / "Dockerfile"
REGRESS_SH = ROOT / "runner" / "regress.sh"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def python_imports(text: str) -> list[str]:
    """Modules imported by every `python -c "..."` in a script."""
    modules = []
    for code in re.findall(r'python[0-9.]*\s+-c\s+"([^"]*)"', text) + re.findall(r"python[0-9.]*\s+-c\s+'([^']*)'", text):
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                modules += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.append(node.module)
    return modules


def missing_modules(text: str) -> list[str]:
    missing = []
    for name in python_imports(text):
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def dockerfile_paths(text: str) -> list[str]:
    """The build-context sources of COPY lines (without --from=: those come from another stage)."""
    paths = []
    for line in _logical_lines(text):
        words = shlex.split(line)
        if words and words[0].upper() in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            paths += [w for w in words[1:-1] if not w.startswith("--")]
    return paths


def cli_calls(text: str) -> list[list[str]]:
    """Every `disco-spec ...` command (and regress.sh's `"${DS[@]}" ...`), as words up to a shell operator."""
    calls = []
    for line in _logical_lines(text):
        # at a command's position only (not inside an echo'd message)
        for m in re.finditer(r'(?:^|&&|\|\||;|\$\(|\bthen|\bdo|\bRUN)\s*(?:disco-spec|"\$\{DS\[@\]\}")\s+([^|&;>)]*)',
                             line):
            words = [w for w in shlex.split(m.group(1), posix=True)]
            calls.append(words)
    return calls


def bad_cli_calls(text: str) -> list[str]:
    """Calls naming a command or an option the `disco-spec` CLI does not have."""
    root = typer.main.get_command(app)
    bad = []
    for words in cli_calls(text):
        cmd = root
        for w in words:
            if w.startswith("$") or w.startswith('"$'):
                continue  # a variable: checked where its value is written
            if w.startswith("-"):
                opt = w.split("=", 1)[0]
                names = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
                if opt not in names:
                    bad.append(f"{' '.join(words)}: no option {opt} in `{cmd.name}`")
            elif hasattr(cmd, "commands"):  # a group (typer vendors its own click)
                if w not in cmd.commands:
                    bad.append(f"{' '.join(words)}: no command {w!r}")
                    break
                cmd = cmd.commands[w]
    return bad


def test_the_dockerfile_imports_copies_and_calls_what_exists():
    text = DOCKERFILE.read_text()
    assert "disco_spec.run.loop" in python_imports(text)
    assert missing_modules(text) == []
    copied = dockerfile_paths(text)
    assert "runner/regress.sh" in copied and "disco_spec" in copied
    assert [p for p in copied if not (ROOT / p).exists()] == []
    assert ["--help"] in cli_calls(text) and ["models", "verify"] in cli_calls(text)
    assert bad_cli_calls(text) == []


def test_a_planted_stale_import_path_or_option_is_caught():
    text = DOCKERFILE.read_text()
    assert missing_modules(text.replace("disco_spec.run.loop", "disco_spec.engine.runner")) == ["disco_spec.engine.runner"]
    moved = text.replace("COPY runner/regress.sh", "COPY runner/regression.sh")
    assert [p for p in dockerfile_paths(moved) if not (ROOT / p).exists()] == ["runner/regression.sh"]
    assert bad_cli_calls(text.replace("models verify", "models check")) != []
    script = REGRESS_SH.read_text()
    assert any("--goldens" in b for b in bad_cli_calls(script.replace("--golden ", "--goldens ")))


def test_regress_sh_calls_what_exists():
    text = REGRESS_SH.read_text()
    calls = cli_calls(text)
    assert any(c[:1] == ["doctor"] for c in calls)
    assert any(c[:1] == ["regress"] for c in calls) and ["models", "verify"] in calls
    assert bad_cli_calls(text) == []
    # the defaults it names: the regression specs, their goldens, the doctor's options, --update passed through
    assert re.search(r'SPECS_DIR="\$\{SPECS_DIR:-specs/regression\}"', text) and (ROOT / "specs" / "regression").is_dir()
    assert (ROOT / "specs" / "regression" / "golden").is_dir()
    default_doctor = re.search(r'DOCTOR_ARGS:---([^}]*)\}', text).group(1)
    assert bad_cli_calls("disco-spec doctor --" + default_doctor) == []
    assert bad_cli_calls("disco-spec regress --update") == []


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w.name for w in WORKFLOWS])
def test_workflows_name_files_that_exist_and_call_what_exists(workflow):
    import yaml

    text = workflow.read_text()
    doc = yaml.safe_load(text)
    on = doc.get("on", doc.get(True, {}))
    for pattern in on.get("pull_request", {}).get("paths", []):
        assert list(ROOT.glob(pattern)) or (ROOT / pattern).exists(), pattern
    runs = [step.get("run", "") for job in doc["jobs"].values() for step in job["steps"]]
    for run in runs:
        for f in re.findall(r"--file\s+(\S+)", run):
            assert (ROOT / f).is_file(), f
        assert missing_modules(run) == []
        assert bad_cli_calls(run) == []
    uploads = [step["with"]["path"] for job in doc["jobs"].values() for step in job["steps"]
               if str(step.get("uses", "")).startswith("actions/upload-artifact")]
    for path in uploads:  # reports/ is written by the run; the goldens exist
        assert path == "reports/" or (ROOT / path).is_dir(), path
    # the image's arguments reach runner/regress.sh, which passes them to `disco-spec regress`
    for flag in re.findall(r"&& '(--[\w-]+)'", text):
        assert bad_cli_calls(f"disco-spec regress {flag}") == [], flag


def test_regress_goes_on_when_one_render_crashes(tmp_path, monkeypatch):
    specs = []
    for stem in ("crashes", "smoke"):  # the crash first: the smoke spec must still render and pass
        shutil.copy(ROOT / "specs" / "smoke.toml", tmp_path / f"{stem}.toml")
        specs.append(str(tmp_path / f"{stem}.toml"))
    shutil.copytree(ROOT / "specs" / "assets", tmp_path / "assets")
    golden = tmp_path / "golden"
    shutil.copytree(ROOT / "tests" / "golden", golden)
    real = regress_module._render

    def render_or_crash(spec, run_dir, progress):
        if Path(spec).stem == "crashes":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(spec, run_dir, progress)

    monkeypatch.setattr(regress_module, "_render", render_or_crash)
    junit = tmp_path / "junit.xml"
    code, out, err = run_cli("regress", *specs, "--golden", str(golden), "--junit", str(junit))
    assert code == 1, out + err  # a failed regression, not a crash of the command (3)
    assert "ERROR crashes" in out and "PASS smoke" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("errors") == "1" and suite.get("failures") == "0"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    error = cases["crashes"].find("error")
    assert "RuntimeError: CUDA error: an illegal memory access" in error.get("message")
    assert "Traceback" in cases["crashes"].find("system-out").text
    assert cases["smoke"].find("error") is None and cases["smoke"].find("failure") is None
