"""What a person reads in the MLflow runs table: run names that say something, short tags that stay
readable in the UI's tag chips, the run's source (the spec file) and user (the OS user).

Run names: `{batch}#{run number} seed={seed} {what differs}`, e.g. `smoke#0002 seed=42
clip_guidance_scale=1500`. For a render, "what differs" is measured against the batch's previous run
folder (its spec.json); for a sweep cell, it is the cell's swept values. No mlflow import here.
"""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import Any, Iterable

from .params import NOT_PARAMS, _as_written, flatten_spec

MAX_RUN_NAME = 250  # MLflow refuses longer run names on some stores
MAX_DIFFS_IN_NAME = 4  # more differences are summarised as "+N more"
SHORT_HASH = 12  # hex digits in the short tags: enough to tell runs apart, short enough for a chip
_RUN_NUMBER = re.compile(r"(\d+)$")


def run_number(run_dir: str | Path) -> str:
    """'0002' for a run folder named run-0002 (the folder name when it has no number)."""
    name = Path(run_dir).name
    m = _RUN_NUMBER.search(name)
    return m.group(1) if m else name


def short_value(value: Any, limit: int = 40) -> str:
    """A value as it reads in a run name: as written (5000, not 5000.0), cut to `limit` characters."""
    value = _as_written(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def differences(doc: dict[str, Any], previous: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(leaf name, new value) for each setting that differs from `previous` (seed and names excluded)."""
    if previous is None:
        return []
    flat = flatten_spec({k: v for k, v in doc.items() if k not in NOT_PARAMS})
    old = flatten_spec({k: v for k, v in previous.items() if k not in NOT_PARAMS})
    leaf_count: dict[str, int] = {}
    for key in flat:
        leaf = key.rsplit(".", 1)[-1]
        leaf_count[leaf] = leaf_count.get(leaf, 0) + 1
    out = []
    for key, value in flat.items():
        if key in ("run.set_seed", "run.batch_name") or _as_written(old.get(key)) == _as_written(value):
            continue
        leaf = key.rsplit(".", 1)[-1]
        # a leaf name that is not unique (e.g. '0' of text_prompts.0) keeps its parent
        out.append((leaf if leaf_count[leaf] == 1 and not leaf.isdigit() else key, value))
    return out


def compose_name(batch: str, number: str, seed: Any, diffs: Iterable[tuple[str, Any]]) -> str:
    diffs = list(diffs)
    parts = [f"{batch}#{number}", f"seed={seed}"]
    parts += [f"{k}={short_value(v)}" for k, v in diffs[:MAX_DIFFS_IN_NAME]]
    if len(diffs) > MAX_DIFFS_IN_NAME:
        parts.append(f"+{len(diffs) - MAX_DIFFS_IN_NAME} more")
    name = " ".join(parts)
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 1] + "…"


def previous_run_document(run_dir: str | Path) -> dict[str, Any] | None:
    """The spec.json of the batch's run folder before this one (the highest-numbered lower sibling)."""
    run_dir = Path(run_dir)
    mine = _RUN_NUMBER.search(run_dir.name)
    if mine is None or not run_dir.parent.is_dir():
        return None
    stem = run_dir.name[: mine.start()]
    best: tuple[int, Path] | None = None
    for sibling in run_dir.parent.iterdir():
        m = _RUN_NUMBER.search(sibling.name)
        if m is None or sibling.name[: m.start()] != stem or int(m.group(1)) >= int(mine.group(1)):
            continue
        if (sibling / "spec.json").is_file() and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), sibling)
    if best is None:
        return None
    from ..errors import SpecError
    from ..spec.untrusted_json import read_file

    try:
        doc = read_file(best[1] / "spec.json", max_bytes=16 << 20)  # the one bounded reader
    except SpecError:
        return None
    return doc if isinstance(doc, dict) else None


def render_run_name(result: Any) -> str:
    """`smoke#0002 seed=42 clip_guidance_scale=1500`: what differs from the batch's previous run."""
    doc = result.spec_document
    diffs = differences(doc, previous_run_document(result.run_dir))
    return compose_name(result.plan.batch_name, run_number(result.run_dir), result.plan.base_seed, diffs)


def cell_run_name(sweep_dir: str | Path, cell: Any, seed: Any, batch: str) -> str:
    """`smoke#0001 cell-03 seed=42 clip_guidance_scale=5000 steps=5`: the sweep's number, the cell, its values."""
    head = f"{run_number(sweep_dir)} {cell.name}"
    return compose_name(batch, head, seed, list(cell.labels.items()))


def short_tags(*, seed: Any, spec_sha256: str | None = None, plan_sha256: str | None = None,
               manifest_id: str | None = None) -> dict[str, str]:
    """Tags whose names and values fit in a tag chip: seed, spec, plan, manifest (short hashes)."""
    tags = {"seed": str(seed)}
    for name, value in (("spec", spec_sha256), ("plan", plan_sha256), ("manifest", manifest_id)):
        if value:
            tags[name] = str(value)[:SHORT_HASH]
    return tags


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment (e.g. a container without passwd)
        return "unknown"


def source_tags(spec_path: str | Path | None) -> dict[str, str]:
    """MLflow's own source and user tags: the spec file rendered and the OS user who rendered it."""
    tags = {"mlflow.user": os_user()}
    if spec_path:
        tags["mlflow.source.name"] = str(Path(spec_path).resolve())
        tags["mlflow.source.type"] = "LOCAL"
    return tags
