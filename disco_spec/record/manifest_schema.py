"""The manifest's own schema: a manifest (or run folder, or PNG) handed to verify, diff or rebuild may
come from a stranger, so it is read as untrusted input.

`read_json_file` bounds the file's size and nesting (a 5,000-deep JSON is a SpecError, not a
RecursionError); `check_manifest` validates the structure with pydantic models (wrong types are a
SpecError naming the field, exit 2); every path a manifest lists must be a plain relative path (no
`..`, not absolute) and `inside_run_dir` keeps it inside the run folder after symlinks are resolved, so
a manifest cannot make disco-spec hash or print a file elsewhere. Unknown keys are allowed (they are
covered by the id like the rest of `hashed`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Mapping

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from ..errors import SpecError
from ..spec import untrusted_json

MAX_MANIFEST_BYTES = 256 * 2**20
MAX_JSON_DEPTH = untrusted_json.MAX_JSON_DEPTH
json_depth_exceeds = untrusted_json.depth_exceeds
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DRIVE = re.compile(r"^[A-Za-z]:")


def _bad(where: str, why: str) -> SpecError:
    return SpecError(f"{where}: {why}", [(where, why)])


def read_json_file(path: str | os.PathLike, *, max_bytes: int = MAX_MANIFEST_BYTES) -> Any:
    """Parse a JSON file with its size and nesting bounded; SpecError (exit 2) when it is not readable JSON
    (spec.untrusted_json, the one reader: duplicate keys, a BOM, a binary file are named too)."""
    return untrusted_json.read_file(path, max_bytes=max_bytes, kind="manifest")


def _relative_path(v: str) -> str:
    parts = v.split("/")
    if (not v or "\x00" in v or "\\" in v or v.startswith("/") or _DRIVE.match(v) or len(v) > 4096
            or any(part in ("", ".", "..") for part in parts)):
        raise ValueError("must be a relative path inside the run folder ('/'-separated, no '..', not absolute)")
    return v


def _sha256(v: str) -> str:
    if not _SHA256.match(v):
        raise ValueError("must be 64 lowercase hexadecimal digits")
    return v


RelPath = Annotated[StrictStr, AfterValidator(_relative_path)]
Sha256 = Annotated[StrictStr, AfterValidator(_sha256)]
Count = Annotated[StrictInt, Field(ge=0)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ModelEntry(_Record):
    role: StrictStr
    name: StrictStr
    sha256: Sha256
    size: Count | None = None
    source_url: StrictStr | None = None


class OutputEntry(_Record):
    path: RelPath
    kind: StrictStr
    item: Count
    batch_index: Count
    frame: Count
    seed: Count
    pixels_sha256: Sha256


class FileEntry(_Record):
    path: RelPath
    sha256: Sha256
    bytes: Count


class ModelPath(_Record):
    role: StrictStr
    name: StrictStr
    path: StrictStr | None = None


class CodeCheckout(_Record):
    git_commit: StrictStr | None = None
    git_dirty: bool | None = None


class Volatile(_Record):
    code_checkout: CodeCheckout | None = None
    spec_dir: StrictStr | None = None
    run_dir: StrictStr | None = None
    model_paths: list[ModelPath] = Field(default_factory=list)


class Hashed(_Record):
    manifest_version: StrictInt
    spec: dict[str, Any]
    spec_sha256: Sha256
    plan_sha256: Sha256
    items: list[Count]
    models: list[ModelEntry]
    code: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: list[OutputEntry]


class Manifest(_Record):
    manifest_version: StrictInt
    id: Sha256
    hashed: Hashed
    files: list[FileEntry]
    volatile: Volatile = Field(default_factory=Volatile)


class Provenance(_Record):
    """What a PNG carries of its manifest (pngmeta KEY_PROVENANCE): read by rebuild/diff of a lone PNG."""

    manifest_version: StrictInt | None = None
    spec_sha256: Sha256 | None = None
    plan_sha256: Sha256 | None = None
    models: list[ModelEntry] = Field(default_factory=list)
    code: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(manifest)"


def _check(model: type[BaseModel], doc: Any, where: str, what: str) -> None:
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        problems = [(where, f"{_field(tuple(e['loc']))}: {e['msg']}") for e in exc.errors()[:20]]
        raise SpecError(f"{where}: not a valid {what}: " + "; ".join(m for _, m in problems), problems) from None


def check_manifest(doc: Mapping[str, Any], where: str) -> None:
    """Raise SpecError naming every field of `doc` that does not fit the manifest schema."""
    _check(Manifest, doc, where, "manifest")


def check_provenance(doc: Any, where: str) -> None:
    """Raise SpecError naming every field of a PNG's provenance chunk that does not fit its schema."""
    if json_depth_exceeds(doc):
        raise _bad(where, f"provenance nested more than {MAX_JSON_DEPTH} levels deep")
    _check(Provenance, doc, where, "provenance chunk")


def inside_run_dir(run_dir: str | os.PathLike, rel: str) -> Path | None:
    """`run_dir/rel` with symlinks resolved, or None when that lies outside the run folder (never opened)."""
    try:
        _relative_path(rel)
    except ValueError:
        return None
    root = Path(os.path.realpath(run_dir))
    real = Path(os.path.realpath(root / PurePosixPath(rel)))
    return real if real.is_relative_to(root) and real != root else None
