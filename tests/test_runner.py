"""runner/: the GPU regression runner, tested as far as a CPU machine without Docker allows.

- runner/regress.sh runs for real (on the CPU) against specs/regression/ and its golden manifests, and
  writes JUnit XML that is parsed here; a changed spec fails with a JUnit <failure>.
- runner/Dockerfile is checked at the parser level (no docker daemon here): required instructions, a
  tagged CUDA base (never `latest`), every pip install pinned, the cache and the entry point.
- runner/requirements.lock pins every package; runner/lock.py regenerates it from an environment.
- .github/workflows/gpu-regression.yml targets a [self-hosted, gpu] runner and calls the image.
What is not tested here: `docker build` itself and rendering on a GPU (docs/gpu-runner.md).
"""

from __future__ import annotations

import pytest
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "runner"
REGRESS = RUNNER / "regress.sh"
SPECS = ROOT / "specs" / "regression"
# `python -m` from the checkout's root runs this checkout's disco_spec (the venv's `disco-spec` script may be
# an install of another one)
DISCO_SPEC_CMD = f"{shlex.quote(sys.executable)} -m disco_spec.cli"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def run_regress(tmp: Path, *args: str, **env_changes: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update({
        "REPORT_DIR": str(tmp / "reports"),
        "DISCO_SPEC": DISCO_SPEC_CMD,
        "DOCTOR_ARGS": "--device cpu --steps 3",  # the doctor's two smoke renders, kept short
        # the goldens were made with one torch thread: the same numeric path, so byte-exact comparison
        "OMP_NUM_THREADS": "1",
        **env_changes,
    })
    return subprocess.run(["bash", str(REGRESS), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    return root


# ---------------------------------------------------------------------------------------------
# regress.sh
# ---------------------------------------------------------------------------------------------


@pytest.mark.render
@pytest.mark.slow
def test_regress_script_passes_on_the_goldens_and_writes_junit(tmp_path):
    r = run_regress(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    report = tmp_path / "reports" / "regress-junit.xml"
    root = junit(report)
    suite = root.find("testsuite")
    assert suite is not None
    stems = sorted(p.stem for p in SPECS.glob("*.toml"))
    assert {"anim-2d", "still", "plms", "no-secondary"} <= set(stems)
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (str(len(stems)), "0", "0")
    names = sorted(tc.get("name") for tc in suite.iter("testcase"))
    assert names == stems
    for tc in suite.iter("testcase"):
        assert tc.find("failure") is None and tc.find("error") is None
        out = tc.findtext("system-out") or ""
        assert "mode: byte-exact" in out or "mode: psnr" in out
    assert f"all {len(stems)} spec(s) ok" in r.stdout
    # `disco-spec doctor` ran first and found the two smoke renders identical
    assert r.stdout.index("result       IDENTICAL") < r.stdout.index(f"all {len(stems)} spec(s) ok")
    assert f"JUnit report: {report}" in r.stdout
    # the renders are kept beside the report
    assert (tmp_path / "reports" / "renders" / "still" / "manifest.json").is_file()


@pytest.mark.render
@pytest.mark.slow
def test_regress_script_fails_on_a_changed_spec(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    text = (SPECS / "still.toml").read_text(encoding="utf-8")
    changed = text.replace("clip_guidance_scale = 5000", "clip_guidance_scale = 4000")
    assert changed != text
    (specs / "still.toml").write_text(changed, encoding="utf-8")
    r = run_regress(tmp_path, SPECS_DIR=str(specs), GOLDEN_DIR=str(SPECS / "golden"),
                    JUNIT=str(tmp_path / "junit" / "out.xml"))
    assert r.returncode == 1, r.stdout + r.stderr
    suite = junit(tmp_path / "junit" / "out.xml").find("testsuite")
    assert suite.get("failures") == "1"
    (tc,) = list(suite.iter("testcase"))
    failure = tc.find("failure")
    assert failure is not None and "guidance.clip_guidance_scale" in (failure.text or "")


@pytest.mark.render
@pytest.mark.slow
def test_regress_script_update_writes_goldens(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copyfile(SPECS / "still.toml", specs / "still.toml")
    r = run_regress(tmp_path, "--update", SPECS_DIR=str(specs))
    assert r.returncode == 0, r.stdout + r.stderr
    new = (specs / "golden" / "still.manifest.json")
    assert new.is_file() and (specs / "golden" / "still" / "regression-still_0000.png").is_file()
    import json

    ours = json.loads((SPECS / "golden" / "still.manifest.json").read_text())
    theirs = json.loads(new.read_text())
    assert theirs["hashed"]["spec_sha256"] == ours["hashed"]["spec_sha256"]


def test_regress_script_without_specs_is_an_input_error(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_regress(tmp_path, SPECS_DIR=str(tmp_path / "empty"))
    assert r.returncode == 2 and "no spec files" in r.stderr


def test_regress_script_stops_when_the_doctor_finds_a_difference(tmp_path):
    # A stand-in `disco-spec` whose doctor answers "different": regress must not run at all.
    calls = tmp_path / "calls.txt"
    stub = tmp_path / "disco-spec-stub.sh"
    stub.write_text(f'echo "$1" >> {shlex.quote(str(calls))}\n'
                    'if [ "$1" = doctor ]; then echo "result       DIFFERENT"; exit 1; fi\nexit 0\n')
    r = run_regress(tmp_path, DISCO_SPEC=f"bash {shlex.quote(str(stub))}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "disco-spec doctor failed (exit 1)" in r.stderr
    assert calls.read_text().split() == ["doctor"]
    # DOCTOR=0 skips it (then models verify and regress run)
    calls.unlink()
    r = run_regress(tmp_path, DISCO_SPEC=f"bash {shlex.quote(str(stub))}", DOCTOR="0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert calls.read_text().split() == ["models", "regress"]


def test_regress_script_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(REGRESS)], capture_output=True).returncode == 0
    assert os.access(REGRESS, os.X_OK)
    text = REGRESS.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


def test_golden_files_match_the_regression_specs():
    from disco_spec.record import manifest
    from disco_spec.spec.load import load_spec, spec_to_document
    from disco_spec.plan.resolve import with_concrete_seed

    specs = sorted(SPECS.glob("*.toml"))
    assert {"anim-2d", "still"} <= {p.stem for p in specs}
    for p in specs:
        m = manifest.load_manifest(SPECS / "golden" / f"{p.stem}.manifest.json")
        assert manifest.id_matches(m)
        spec, _ = with_concrete_seed(load_spec(p))
        assert m["hashed"]["spec_sha256"] == manifest.spec_sha256(spec_to_document(spec)), p.name
        for o in m["hashed"]["outputs"]:
            if o["kind"] == "image":
                assert (SPECS / "golden" / p.stem / o["path"]).is_file()


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    assert not buf, "a continuation line at the end of the Dockerfile"
    return out


def pip_installs(run: str) -> list[list[str]]:
    """The argument lists of every `pip install` in a RUN command (commands split at && || ; | and
    if/then/fi words, quotes respected)."""
    lex = shlex.shlex(run, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    commands, cur = [], []
    for tok in lex:
        if tok in ("&&", "||", ";", "|", ">", "then", "fi", "if", "else", "do", "done"):
            commands.append(cur)
            cur = []
        else:
            cur.append(tok)
    commands.append(cur)
    found = []
    for words in commands:
        for i in range(len(words) - 1):
            if words[i] == "pip" and words[i + 1] == "install":
                found.append(words[i + 2:])
    return found


def test_dockerfile():
    text = (RUNNER / "Dockerfile").read_text(encoding="utf-8")
    ins = dockerfile_instructions(text)
    kinds = [k for k, _ in ins]
    for required in ("FROM", "RUN", "COPY", "ENV", "ENTRYPOINT", "WORKDIR"):
        assert required in kinds, required
    args = {}
    for k, v in ins:
        if k == "ARG" and "=" in v:
            name, _, default = v.partition("=")
            args[name] = default.strip('"')
    (base,) = [v for k, v in ins if k == "FROM"]
    image = args.get(base.strip("${}"), base) if base.startswith("$") else base
    name, _, tag = image.partition(":")
    assert name == "nvidia/cuda" and tag and tag != "latest" and "ubuntu" in tag, image
    assert "latest" not in text.replace("the latest", "")
    assert any(k == "ARG" and v.startswith("PYTHON_VERSION=3.11") for k, v in ins)

    runs = [v for k, v in ins if k == "RUN"]
    installs = [p for r in runs for p in pip_installs(r)]
    assert installs, "no pip install found"
    for argv in installs:
        pkgs = [a for a in argv if not a.startswith("-")]
        opts = " ".join(argv)
        if "--requirement" in argv or "-r" in argv:
            assert "/opt/disco-spec/requirements.lock" in argv
            continue
        if pkgs == ["."]:
            assert "--no-deps" in argv, "disco-spec itself: its dependencies come from the lock"
            continue
        if "--index-url" in argv:
            pkgs = [a for a in pkgs if not a.startswith(("http", "$"))]
        assert pkgs and all("==" in p for p in pkgs), f"unpinned pip install: {opts}"
    assert any("apt-get install" in r and "--no-install-recommends" in r and "rm -rf /var/lib/apt/lists" in r
               for r in runs)
    copies = " ".join(v for k, v in ins if k == "COPY")
    assert "runner/requirements.lock" in copies and "runner/regress.sh" in copies
    env = " ".join(v for k, v in ins if k == "ENV")
    assert "DISCO_SPEC_CACHE=/cache" in env
    (entry,) = [v for k, v in ins if k == "ENTRYPOINT"]
    assert "disco-spec-regress" in entry
    assert any("FETCH_MODELS" in r and "models fetch" in r and "models verify" in r for r in runs)
    for src in re.findall(r"^COPY\s+(\S+)", text, re.M):
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the checkout"


def test_requirements_lock_pins_everything_render_needs():
    lines = [ln.strip() for ln in (RUNNER / "requirements.lock").read_text(encoding="utf-8").splitlines()]
    pins = [ln for ln in lines if ln and not ln.startswith("#")]
    assert pins
    for ln in pins:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+", ln), ln
    names = {canonical(ln.split("==")[0]) for ln in pins}
    assert len(names) == len(pins), "a package is pinned twice"
    assert "disco-spec" not in names
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    direct = project["dependencies"] + project["optional-dependencies"]["render"]
    for req in direct:
        assert canonical(re.match(r"[A-Za-z0-9._-]+", req).group(0)) in names, req


def test_lock_script_writes_a_pinned_closure(tmp_path):
    out = tmp_path / "lock.txt"
    r = subprocess.run([sys.executable, str(RUNNER / "lock.py"), "-o", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    pins = {canonical(ln.split("==")[0]): ln.split("==")[1] for ln in out.read_text().splitlines()
            if ln and not ln.startswith("#")}
    import importlib.metadata as md

    for name in ("torch", "pydantic", "mlflow", "open-clip-torch", "pillow"):
        assert pins[name] == md.version(name)


# ---------------------------------------------------------------------------------------------
# The workflow
# ---------------------------------------------------------------------------------------------


def test_workflow_runs_regress_on_a_self_hosted_gpu_runner():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "gpu-regression.yml").read_text(encoding="utf-8"))
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert {"push", "pull_request", "workflow_dispatch"} <= set(on)
    assert wf["permissions"] == {"contents": "read"}
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    assert "head.repo.full_name == github.repository" in job["if"]  # no fork code on the runner
    steps = job["steps"]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "docker build --file runner/Dockerfile" in runs
    assert "docker run --rm --gpus all" in runs and ":/cache" in runs
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert any(s["with"]["path"] == "reports/" and s.get("if") == "always()" for s in uploads)
    assert all(s.get("uses", "actions/").startswith("actions/") for s in steps)  # official actions only
