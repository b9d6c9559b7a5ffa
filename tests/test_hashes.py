"""One definition per content hash: one file hasher, one spec hash that the journal (run_state.json), the
manifest, PNGs and MLflow tags all mean by `spec_sha256`, and resume of run folders journalled before."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest

import disco_spec
from disco_spec import hashes
from disco_spec.record import ids
from cli_helpers import small_smoke_doc

PACKAGE_DIR = Path(disco_spec.__file__).parent

# Every module that calls hashlib, and what it hashes that no shared function does. A new entry means a
# new kind of hash: give it one function and one name here, or use hashes.file_sha256 / record.ids.
HASHLIB_USERS = {
    "hashes": "file bytes (the one file hasher) and bytes in memory (what a file of them would hash to)",
    "record.ids": "RFC 8785 canonical JSON: spec_sha256, the manifest id",
    "record.pngmeta": "pixels_sha256: mode, size and decoded pixels",
    "record.mp4meta": "media_sha256: an mp4 without its metadata box",
    "record.environment": "the compiler flags string",
    "plan.resolve": "plan_sha256: the plan's JSON",
    "plan.seeds": "seed derivation (a seed, not a content hash)",
    "models.tiny": "tiny checkpoints generated in memory; their generator seeds",
    "models.weights": "a download, hashed as it streams in, before it is a file",
    "tracking.params": "a shortened MLflow key",
}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for p in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = p.relative_to(PACKAGE_DIR).with_suffix("")
        name = ".".join(part for part in rel.parts if part != "__init__")
        out[name] = ast.parse(p.read_text(encoding="utf-8"))
    return out


def test_file_sha256_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # over one 1 MiB block, not a multiple of it
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    assert hashes.file_sha256(f) == hashes.file_sha256(str(f)) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert hashes.file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()
    with pytest.raises(OSError):
        hashes.file_sha256(tmp_path / "missing")


def test_only_the_listed_modules_use_hashlib() -> None:
    users = {name for name, tree in _modules().items() for node in ast.walk(tree)
             if isinstance(node, (ast.Import, ast.ImportFrom))
             and any(a.name == "hashlib" for a in node.names) | (getattr(node, "module", None) == "hashlib")}
    assert users == set(HASHLIB_USERS)


def test_each_hash_function_is_defined_once() -> None:
    """A `*sha256*` name is one function: no module keeps its own copy under a shared name."""
    defined: dict[str, list[str]] = {}
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and "sha256" in node.name and not node.name.startswith("_"):
                defined.setdefault(node.name, []).append(name)
    assert {n: m for n, m in defined.items() if len(m) > 1} == {}
    assert defined["file_sha256"] == ["hashes"] and defined["spec_sha256"] == ["record.ids"]


def test_every_spec_sha256_name_is_the_manifests() -> None:
    from disco_spec.record import manifest, pngmeta
    from disco_spec.run import journal, records, resume
    from disco_spec.tracking import params, tracker

    for module in (manifest, journal, resume, params, tracker):
        assert module.spec_sha256 is ids.spec_sha256, module.__name__
    for module in (pngmeta, records):
        assert module.file_sha256 is hashes.file_sha256, module.__name__


def _spec_hashes(run_dir: Path) -> tuple[str, str]:
    state = json.loads((run_dir / "run_state.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return state["spec_sha256"], manifest["hashed"]["spec_sha256"]


@pytest.mark.render
def test_journal_and_manifest_agree_on_the_spec_hash_for_a_render_and_its_resume(tmp_path: Path) -> None:
    from disco_spec.run.renderer import render
    from disco_spec.spec.load import validate_document

    spec = validate_document(small_smoke_doc(run={"n_batches": 2}))
    first = render(spec, tmp_path, progress=False)
    journal_hash, manifest_hash = _spec_hashes(first.run_dir)
    assert journal_hash == manifest_hash == ids.spec_sha256(first.spec_document)

    (first.run_dir / "smoke_0001.png").unlink()
    again = render(spec, tmp_path, progress=False, resume=True)
    assert again.run_dir == first.run_dir
    assert _spec_hashes(again.run_dir) == (journal_hash, manifest_hash)


@pytest.mark.render
def test_a_run_journalled_with_the_old_spec_hash_still_resumes(tmp_path: Path) -> None:
    """run_state.json version 1 hashed json.dumps(sort_keys) of the spec: spec.json decides instead."""
    from disco_spec.errors import SpecError
    from disco_spec.run.renderer import render
    from disco_spec.spec.load import validate_document

    spec = validate_document(small_smoke_doc(run={"n_batches": 2}))
    first = render(spec, tmp_path, progress=False)
    state_path = first.run_dir / "run_state.json"
    state = json.loads(state_path.read_text())
    old_form = json.dumps(first.spec_document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    state.update(run_state_version=1, spec_sha256=hashlib.sha256(old_form.encode("utf-8")).hexdigest())
    state_path.write_text(json.dumps(state))
    want = (first.run_dir / "smoke_0001.png").read_bytes()
    (first.run_dir / "smoke_0001.png").unlink()

    again = render(spec, tmp_path, progress=False, resume=True)
    assert (again.run_dir / "smoke_0001.png").read_bytes() == want
    assert json.loads(state_path.read_text())["run_state_version"] == 2
    assert _spec_hashes(again.run_dir)[0] == ids.spec_sha256(first.spec_document)

    # a version-1 journal of a different spec is still refused, by spec.json
    state.update(run_state_version=1)
    state_path.write_text(json.dumps(state))
    changed = validate_document(small_smoke_doc(run={"n_batches": 2}, guidance={"tv_scale": 1}))
    with pytest.raises(SpecError) as refused:
        render(changed, tmp_path, progress=False, resume=True)
    assert any("tv_scale" in loc for loc, _ in refused.value.problems)
