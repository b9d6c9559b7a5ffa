"""What a person reads in the MLflow runs table: run names that say something, short tags that stay
readable in the UI's tag chips, the run's source (the spec file) and user (the OS user).

Run names lead with what makes the run different from the spec file as committed, then say which run
it is (the batch and the run folder, whose number form tells renders and sweeps apart):

    smoke run-0001                                        a render of the file as it is
    clip_guidance_scale=1500 · smoke run-0002             `render --set clip_guidance_scale=1500`
    seed=2093844 · smoke run-0003                         a drawn seed (`random_seed`) or `--seed`
    clip_guidance_scale=1500 steps=5 · smoke sweep-0001/cell-03    a sweep cell: its values
    clip_guidance_scale × steps · smoke sweep-0001        the sweep's parent run: what it varies

No mlflow import here.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any, Iterable

from .params import as_written, setting_values

MAX_RUN_NAME = 250  # MLflow refuses longer run names on some stores
MAX_DIFFS_IN_NAME = 4  # more differences are summarised as "+N more"
SHORT_HASH = 12  # hex digits in the short tags: enough to tell runs apart, short enough for a chip


def short_value(value: Any, limit: int = 40) -> str:
    """A value as it reads in a run name: as written (5000, not 5000.0), cut to `limit` characters."""
    value = as_written(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


SEPARATOR = " · "  # between what differs and which run it is


def differences(doc: dict[str, Any], base: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """(name, value) for each setting of `doc` that differs from `base` (seed and batch name excluded): the
    leaf name when it is unique in the spec (`clip_guidance_scale`), else the dotted path."""
    if base is None:
        return []
    flat, old = setting_values(doc), setting_values(base)
    leaf_count: dict[str, int] = {}
    for key in flat:
        leaf = key.rsplit(".", 1)[-1]
        leaf_count[leaf] = leaf_count.get(leaf, 0) + 1
    out = []
    for key, value in flat.items():
        if key in ("run.set_seed", "run.batch_name") or as_written(old.get(key)) == as_written(value):
            continue
        leaf = key.rsplit(".", 1)[-1]
        # a leaf name that is not unique (e.g. '0' of text_prompts.0) keeps its parent
        out.append((leaf if leaf_count[leaf] == 1 and not leaf.isdigit() else key, value))
    return out


def compose_name(which: str, diffs: Iterable[tuple[str, Any]]) -> str:
    """`k=v k2=v2 · {which}`: what differs first (at most MAX_DIFFS_IN_NAME, then "+N more"), then which run."""
    diffs = list(diffs)
    parts = [f"{k}={short_value(v)}" for k, v in diffs[:MAX_DIFFS_IN_NAME]]
    if len(diffs) > MAX_DIFFS_IN_NAME:
        parts.append(f"+{len(diffs) - MAX_DIFFS_IN_NAME} more")
    name = " ".join(parts) + SEPARATOR + which if parts else which
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 1] + "…"


def spec_file_document(spec_path: str | Path | None) -> dict[str, Any] | None:
    """The document of the spec file as it is on disk (validated, defaults filled in); None when
    `spec_path` is not a spec file that validates (e.g. a PNG, or a file changed into an invalid one)."""
    if not spec_path or Path(spec_path).suffix.lower() not in (".toml", ".json"):
        return None
    from ..errors import DiscoSpecError
    from ..spec.load import load_spec, spec_to_document

    try:
        return spec_to_document(load_spec(spec_path))
    except (DiscoSpecError, OSError, ValueError):
        return None


def render_run_name(result: Any, base: dict[str, Any] | None = None) -> str:
    """`clip_guidance_scale=1500 · smoke run-0002`: what differs from `base` (the spec file's document),
    the seed when the file does not fix it to this value, then the batch and the run folder."""
    doc = result.spec_document
    seed = result.plan.base_seed
    diffs = differences(doc, base)
    base_seed = ((base or {}).get("run") or {}).get("set_seed") if base is not None else None
    if (base is not None and as_written(base_seed) != as_written(seed)) or (base is None and result.seed_drawn):
        diffs.insert(0, ("seed", seed))
    return compose_name(f"{result.plan.batch_name} {Path(result.run_dir).name}", diffs)


def cell_run_name(sweep_dir: str | Path, cell: Any, batch: str) -> str:
    """`clip_guidance_scale=5000 steps=5 · smoke sweep-0001/cell-03`: the cell's values, then which cell."""
    return compose_name(f"{batch} {Path(sweep_dir).name}/{cell.name}", list(cell.labels.items()))


def sweep_run_name(sweep_dir: str | Path, keys: Iterable[str], batch: str) -> str:
    """`clip_guidance_scale × steps · smoke sweep-0001`: what the sweep varies, then which sweep."""
    varied = " × ".join(keys)
    which = f"{batch} {Path(sweep_dir).name}"
    name = f"{varied}{SEPARATOR}{which}" if varied else which
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 1] + "…"


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
