"""A spec reads files only inside its repository (issue 14, item 3): init images, image prompts, the
Video Input source and model files named by path resolve against the spec's folder and must stay in
the enclosing git work tree (else the spec's folder) after symlinks; --allow-path / the environment
widen it. Refusals come before the file is opened or hashed, and before any model loads."""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from cli_helpers import small_smoke_doc as small_doc, run_cli, write_spec
from disco_spec.errors import SpecError, WeightsHashMismatch
from disco_spec.models import resolve
from disco_spec.spec.access import InputPolicy, allow_paths_from_env, repository_root

pytestmark = pytest.mark.render

ROOT = Path(__file__).resolve().parent.parent
SMOKE = tomllib.loads((ROOT / "specs" / "smoke.toml").read_text())



def png(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), color).save(path)
    return path


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    """A spec folder (no git above it) and a secret image beside it, outside."""
    specs = tmp_path / "project"
    specs.mkdir()
    secret = png(tmp_path / "elsewhere" / "secret.png")
    return {"specs": specs, "secret": secret, "tmp": tmp_path}


def no_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    from disco_spec.run import loop

    def refuse(*a, **k):  # the refusal must come first
        raise AssertionError("models were loaded before the input was refused")

    monkeypatch.setattr(loop, "load_models", refuse)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "home"])
def test_init_image_outside_the_spec_folder_is_refused(project, how, monkeypatch, capsys) -> None:
    specs, secret = project["specs"], project["secret"]
    monkeypatch.setenv("HOME", str(secret.parent))
    name = {"dotdot": "../elsewhere/secret.png", "absolute": str(secret), "home": "~/secret.png",
            "symlink": "link.png"}[how]
    if how == "symlink":
        (specs / "link.png").symlink_to(secret)
    spec = write_spec(specs / "s.toml", small_doc(init={"init_image": name}))
    no_model_loads(monkeypatch)
    code, out, err = run_cli("render", str(spec), "--out", str(project["tmp"] / "out"), "-q", "--no-track")
    assert code == 2, err
    assert "init.init_image" in err and "outside the folders this spec may read" in err and "--allow-path" in err
    assert hashlib.sha256(secret.read_bytes()).hexdigest() not in err + out
    assert not list((project["tmp"] / "out").rglob("*.png"))


@pytest.mark.slow
def test_image_prompt_outside_is_refused_and_allow_path_widens(project, monkeypatch) -> None:
    from disco_spec.run.renderer import render

    specs, secret = project["specs"], project["secret"]
    spec = write_spec(specs / "s.toml", small_doc(prompts={"image_prompts": {"0": [f"{secret}:0.5"]}}))
    with pytest.raises(SpecError) as refused:
        render(spec, project["tmp"] / "out", progress=False)
    assert refused.value.problems[0][0] == "prompts.image_prompts"
    # --allow-path (here through the environment variable the CLI reads) lets it through
    monkeypatch.setenv("DISCO_SPEC_ALLOW_PATHS", os.pathsep.join(["", str(secret.parent)]))
    code, out, err = run_cli("render", str(spec), "--out", str(project["tmp"] / "out"), "-q", "--no-track")
    assert code == 0, err
    import json

    (run,) = (project["tmp"] / "out" / "smoke").glob("run-*/manifest.json")
    files = json.loads(run.read_text())["hashed"]["inputs"]["files"]
    assert files == [{"field": "prompts.image_prompts", "source": str(secret), "bytes": secret.stat().st_size,
                      "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}]


def test_repository_is_the_enclosing_git_work_tree(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    (repo / "specs" / "deep").mkdir(parents=True)
    (repo / ".git").write_text("gitdir: /elsewhere/.git/worktrees/x\n")  # a worktree's .git is a file
    assets = png(repo / "assets" / "a.png")
    assert repository_root(repo / "specs" / "deep") == repo
    policy = InputPolicy.for_spec(repo / "specs" / "deep")
    assert policy.resolve("../../assets/a.png", "init.init_image") == assets
    with pytest.raises(SpecError):
        policy.resolve("../../../outside.png", "init.init_image")
    # no git anywhere above: the spec's own folder only
    alone = tmp_path / "alone" / "specs"
    alone.mkdir(parents=True)
    assert repository_root(alone) == alone
    # ~ expands (and is then checked like any absolute path)
    monkeypatch.setenv("HOME", str(repo))
    assert policy.resolve("~/assets/a.png", "init.init_image") == assets
    assert allow_paths_from_env({"DISCO_SPEC_ALLOW_PATHS": f"/a{os.pathsep}{os.pathsep}/b"}) == ["/a", "/b"]
    with pytest.raises(SpecError, match="only http"):
        policy.resolve("file:///etc/passwd", "init.init_image")


def test_a_symlinked_folder_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    png(tmp_path / "outside" / "x.png")
    (repo / "assets").symlink_to(tmp_path / "outside")
    policy = InputPolicy.for_spec(repo)
    with pytest.raises(SpecError, match="resolves to"):
        policy.resolve("assets/x.png", "init.init_image")
    widened = InputPolicy.for_spec(repo, allow_paths=[tmp_path / "outside"])
    assert widened.resolve("assets/x.png", "init.init_image") == tmp_path / "outside" / "x.png"


def test_custom_model_file_outside_is_refused_without_hashing(project, monkeypatch) -> None:
    hashed: list[Path] = []
    monkeypatch.setattr(resolve, "weight_sha256", lambda p, **k: hashed.append(Path(p)) or "0" * 64)
    ref = SimpleNamespace(path="../elsewhere/secret.png", sha256="a" * 64)
    with pytest.raises(SpecError) as exc:
        resolve.resolve_weights(ref, "diffusion", spec_dir=project["specs"])
    assert exc.value.problems[0][0] == "models.diffusion_model.path"
    assert hashed == []


def test_hash_mismatch_of_a_users_own_model_file_does_not_say_delete(project) -> None:
    own = project["specs"] / "mine.pt"
    torch.save({"w": torch.zeros(2)}, own)
    with pytest.raises(WeightsHashMismatch) as exc:
        resolve.resolve_weights(SimpleNamespace(path="mine.pt", sha256="b" * 64), "diffusion", spec_dir=project["specs"])
    assert "delete" not in str(exc.value).lower()
    assert "not used" in str(exc.value)


def test_open_clip_pretrained_file_outside_is_refused(project) -> None:
    pytest.importorskip("open_clip")
    from disco_spec.models.clip import load_open_clip

    with pytest.raises(SpecError) as exc:
        load_open_clip("ViT-B-32", str(project["secret"]), "c" * 64, torch.device("cpu"), spec_dir=project["specs"])
    assert exc.value.problems[0][0] == "models.extra_clip_models.pretrained"


def test_video_outside_is_refused_before_it_is_read(project, monkeypatch) -> None:
    from disco_spec.run import video_input
    from disco_spec.spec.load import validate_document

    def no_read(*a, **k):
        raise AssertionError("the video was opened")

    monkeypatch.setattr(video_input, "video_module", no_read)
    spec = validate_document(small_doc(animation={"animation_mode": "Video Input"},
                                       video_input={"video_init_path": str(project["secret"])}))
    with pytest.raises(SpecError) as exc:
        video_input.prepare_video_input(spec, project["tmp"] / "run", InputPolicy.for_spec(project["specs"]))
    assert exc.value.problems[0][0] == "video_input.video_init_path"
