"""The thin CLI commands: models, import-dd, plan, render — exit codes and what they print."""

from __future__ import annotations

import pytest
import json
from pathlib import Path

from cli_helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.render
def test_models_make_tiny_list_and_verify() -> None:
    code, out, _ = run_cli("models", "make-tiny")
    assert code == 0 and "tiny-uncond" in out and "tiny-clip" in out
    code, out, _ = run_cli("models", "list")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "512x512_diffusion_uncond_finetune_008100" in lines and "ViTB32" in lines
    assert lines["tiny-uncond"].split()[-2] == "yes"  # cached column
    code, out, _ = run_cli("models", "verify", "tiny-uncond", "tiny-secondary")
    assert code == 0 and out.count(": OK") == 2


@pytest.mark.render
def test_models_verify_fails_for_missing_and_tampered(tmp_path: Path, cache: Path) -> None:
    # `cache`: the module's private model cache. The session's cache is shared by every test and pytest
    # worker rendering at the same moment; a tampered checkpoint there changes their images.
    code, out, _ = run_cli("models", "verify", "ViTL14")
    assert code == 1 and "not in the cache" in out
    from disco_spec.models.registry import get_entry
    from disco_spec.models.resolve import entry_path

    run_cli("models", "make-tiny")
    path = entry_path(get_entry("tiny-secondary"))
    data = bytearray(path.read_bytes())
    try:
        data[-1] ^= 1
        path.write_bytes(bytes(data))
        code, out, _ = run_cli("models", "verify", "tiny-secondary")
        assert code == 1 and "mismatch" in out.lower()
    finally:
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    assert path.is_relative_to(cache)


def test_models_fetch_unknown_name_suggests() -> None:
    code, _, err = run_cli("models", "fetch", "ViTB31")
    assert code == 1 and "ViTB32" in err


def test_import_dd_writes_a_valid_spec(tmp_path: Path) -> None:
    out = tmp_path / "imported.toml"
    report = ROOT / "tests" / "data" / "dd_reports" / "TimeToDisco(3)_settings.txt"
    code, _, err = run_cli("import-dd", str(report), "-o", str(out), "--animation-mode", "2D")
    assert code == 0, err
    assert "assumed" in err
    code, _, err = run_cli("validate", str(out))
    assert code == 0, err
    code, _, err = run_cli("import-dd", str(report), "--animation-mode", "4D")
    assert code == 2 and "--animation-mode" in err


def test_plan_json_and_table(specs_dir: Path) -> None:
    code, out, _ = run_cli("plan", str(specs_dir / "anim-2d.toml"), "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["n_items"] == 120 and plan["items"][60]["text_prompts"][0]["source"].startswith("an overgrown")
    code, out, _ = run_cli("plan", str(specs_dir / "anim-2d.toml"), "--frames", "58:62")
    assert code == 0
    rows = out.splitlines()[2:]
    assert [r.split()[1] for r in rows] == ["58", "59", "60", "61"]
    code, _, err = run_cli("plan", str(specs_dir / "anim-2d.toml"), "--frames", "a:b")
    assert code == 2 and "--frames" in err


@pytest.mark.render
@pytest.mark.slow
def test_render_command_reports_where_images_went(tmp_path: Path, specs_dir: Path) -> None:
    code, out, err = run_cli("render", str(specs_dir / "smoke.toml"), "--out", str(tmp_path), "-q", "--no-track")
    assert code == 0, err
    assert "1 image(s) in" in out and str(tmp_path) in out
    assert (tmp_path / "smoke" / "run-0001" / "smoke_0000.png").exists()
    code, _, err = run_cli("render", str(specs_dir / "smoke.toml"), "--out", str(tmp_path), "--item", "5", "-q", "--no-track")
    assert code == 2 and "item 5 does not exist" in err
