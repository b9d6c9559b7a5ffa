"""The pre-commit hook for spec repositories, run by pre-commit itself (`pre-commit run`).

pre-commit installs this repository into its own virtualenv exactly as it would for a user (pip,
from a git repository named with its `rev` in the spec repository's `.pre-commit-config.yaml`: a copy
of this checkout's package files committed in a temporary repository, so uncommitted work is tested
too), then runs `disco-spec validate` on the files given. That install needs PyPI (pydantic,
jsonschema, typer, ...; no torch: the base package is light). One environment is built per test
module, under a temporary PRE_COMMIT_HOME that the module's runs share (`pre-commit try-repo` would
build a new one for every run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HOOK_ID = "disco-spec-validate"
SMOKE = (ROOT / "specs" / "smoke.toml").read_text(encoding="utf-8")


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args], cwd=cwd,
                          env=env, check=True, capture_output=True, text=True).stdout


def _package_files() -> list[str]:
    """This checkout's files that `pip install .` needs (tracked or not, never git-ignored ones)."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "--", "pyproject.toml", "README.md",
         ".pre-commit-hooks.yaml", "disco_spec"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return sorted({line for line in out.splitlines() if line and (ROOT / line).is_file()})


@pytest.fixture(scope="module")
def hook_env(tmp_path_factory):
    base = tmp_path_factory.mktemp("precommit")
    hook_repo = base / "disco-spec"
    for rel in _package_files():
        dest = hook_repo / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, dest)
    _git("init", "-q", cwd=hook_repo)
    _git("add", "-A", cwd=hook_repo)
    _git("commit", "-q", "-m", "hook repo", cwd=hook_repo)

    specs_repo = base / "my-specs"
    (specs_repo / "specs").mkdir(parents=True)
    (specs_repo / "specs" / "good.toml").write_text(SMOKE, encoding="utf-8")
    bad = SMOKE.replace("clip_guidance_scale = 5000", 'clip_guidance_scale = "high"')
    assert bad != SMOKE
    (specs_repo / "specs" / "bad.toml").write_text(bad, encoding="utf-8")
    (specs_repo / "notes.toml").write_text("not = 'a spec'\n", encoding="utf-8")  # outside specs/: not checked
    rev = _git("rev-parse", "HEAD", cwd=hook_repo).strip()
    (specs_repo / ".pre-commit-config.yaml").write_text(
        yaml.safe_dump({"repos": [{"repo": str(hook_repo), "rev": rev, "hooks": [{"id": HOOK_ID}]}]}),
        encoding="utf-8")
    _git("init", "-q", cwd=specs_repo)
    _git("add", "-A", cwd=specs_repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRE_COMMIT", "VIRTUAL_ENV"))}
    env["PRE_COMMIT_HOME"] = str(base / "pre-commit-home")
    env["PRE_COMMIT_COLOR"] = "never"
    return {"hook_repo": hook_repo, "specs_repo": specs_repo, "env": env}


def run_hook(env: dict, *files: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pre_commit", "run", HOOK_ID, "--verbose"]
    cmd += ["--files", *files] if files else ["--all-files"]
    return subprocess.run(cmd, cwd=env["specs_repo"], env=env["env"], capture_output=True, text=True, timeout=600)


def test_hook_definition():
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == HOOK_ID
    assert hook["entry"] == "disco-spec validate"
    assert hook["language"] == "python"
    import re

    files, exclude = re.compile(hook["files"]), re.compile(hook["exclude"])
    picked = [p for p in ("specs/a.toml", "specs/sub/b.json", "x/specs/c.toml", "pyproject.toml", "specs/a.png",
                          "specs/regression/golden/still.manifest.json") if files.search(p) and not exclude.search(p)]
    assert picked == ["specs/a.toml", "specs/sub/b.json", "x/specs/c.toml"]


@pytest.mark.slow
def test_valid_spec_passes(hook_env):
    r = run_hook(hook_env, "specs/good.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "specs/good.toml: ok" in r.stdout


@pytest.mark.slow
def test_invalid_spec_fails_naming_the_field(hook_env):
    r = run_hook(hook_env, "specs/good.toml", "specs/bad.toml")
    assert r.returncode != 0, r.stdout + r.stderr
    assert "specs/bad.toml: guidance.clip_guidance_scale:" in r.stdout, r.stdout
    assert "Failed" in r.stdout


@pytest.mark.slow
def test_all_files_checks_only_spec_folders(hook_env):
    r = run_hook(hook_env)
    assert r.returncode != 0
    assert "notes.toml" not in r.stdout  # not under specs/
    assert "specs/bad.toml: guidance.clip_guidance_scale:" in r.stdout
