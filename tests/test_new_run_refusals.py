"""A new render refused for its inputs leaves the --out folder as it was: no empty run folder behind it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import run_cli, small_smoke_doc, write_spec
from folder_snapshot import unchanged


def _out_with_a_finished_run(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "smoke" / "run-0001").mkdir(parents=True)
    (out / "smoke" / "run-0001" / "manifest.json").write_text("{}")
    return out


@pytest.mark.parametrize("sections, field", [
    ({"init": {"init_image": "missing.png", "skip_steps": 2}}, "init.init_image"),
    ({"prompts": {"image_prompts": {"0": ["../outside.png"]}}}, "prompts.image_prompts"),
], ids=["missing-init-image", "image-prompt-outside"])
def test_a_refused_input_makes_no_run_folder(tmp_path: Path, sections: dict, field: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # beside the project, not inside it
    spec = write_spec(project / "spec.toml", small_smoke_doc(**sections))
    out = _out_with_a_finished_run(tmp_path)
    with unchanged(out):
        code, _, err = run_cli("render", str(spec), "--out", str(out), "--no-track")
    assert code == 2, err
    assert field in err
