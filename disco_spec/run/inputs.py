"""The files a render reads besides the spec and the models: init images and image prompts.

Before any model loads, `InputStore.prepare` reads every init image and image prompt the plan names,
under the render's InputPolicy (spec.access): local paths must lie inside the allowed folders, URLs
are fetched only with --allow-network (deadline, size cap). Each is hashed; a pinned
`init.init_image_sha256` that differs refuses the render (exit 2). The records go to the manifest's
`inputs`, so the manifest id covers the bytes the render used. Later reads of a local file check that
it still has the recorded SHA-256 (a file swapped during the render is refused); URLs are fetched once
and kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import RenderError, SpecError
from ..hashes import bytes_sha256
from ..spec.access import InputPolicy, is_url
from .fetch import fetch_url

if TYPE_CHECKING:
    from ..plan.resolve import Plan

INIT_FIELD = "init.init_image"
PROMPT_FIELD = "prompts.image_prompts"


@dataclass(frozen=True)
class InputRecord:
    fld: str  # the spec field that names it
    source: str  # as the spec names it (path or URL): machine-independent, so the manifest id is too
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.fld, "source": self.source, "sha256": self.sha256, "bytes": self.bytes}


def _read_local(access: InputPolicy, source: str, fld: str) -> bytes:
    path = access.resolve(source, fld)
    try:
        size = os.stat(path).st_size
        if size > access.max_file_bytes:
            why = f"{source!r} is {size} bytes, more than the cap of {access.max_file_bytes} bytes"
            raise SpecError(f"{fld}: {why}", [(fld, why)])
        with open(path, "rb") as f:
            return f.read(access.max_file_bytes + 1)
    except OSError as exc:
        why = f"cannot read {source!r}: {exc.strerror or exc}"
        raise SpecError(f"{fld}: {why}", [(fld, why)]) from None


@dataclass
class InputStore:
    access: InputPolicy
    records: dict[tuple[str, str], InputRecord] = field(default_factory=dict)  # (field, source) -> record
    _fetched: dict[str, bytes] = field(default_factory=dict, repr=False)

    def read(self, source: str, fld: str) -> bytes:
        """The bytes of `source` (a spec path or URL), checked against the policy and the recorded hash."""
        if is_url(source):
            if source not in self._fetched:
                self.access.check_url(source, fld)
                self._fetched[source] = fetch_url(source, deadline_s=self.access.url_deadline_s,
                                                  max_bytes=self.access.max_url_bytes, fld=fld)
            data = self._fetched[source]
        else:
            data = _read_local(self.access, source, fld)
        sha = bytes_sha256(data)
        known = self.records.get((fld, source))
        if known is None:
            self.records[(fld, source)] = InputRecord(fld=fld, source=source, sha256=sha, bytes=len(data))
        elif known.sha256 != sha:
            raise RenderError(f"{fld}: {source!r} changed during the render (SHA-256 {known.sha256} when the "
                              f"render started, {sha} now); render again once it stays put")
        return data

    def prepare(self, plan: Plan) -> None:
        """Read and hash every init image and image prompt of the plan (each once); check the pinned init hash."""
        wanted: dict[tuple[str, str], str | None] = {}  # (source, field) -> pin; frames repeat the same files
        for item in plan.items:
            init = item.init
            if init.get("kind") == "image" and init.get("path") and not init.get("perlin"):
                wanted.setdefault((init["path"], INIT_FIELD), init.get("sha256"))
            for p in item.image_prompts:
                wanted.setdefault((p.text, PROMPT_FIELD), None)
        for (source, fld), pinned in wanted.items():
            self.read(source, fld)
            if pinned:
                self.check_pin(source, pinned, "init.init_image_sha256")

    def check_pin(self, source: str, pinned: str, fld: str) -> None:
        actual = self.records[(INIT_FIELD, source)].sha256
        if actual != pinned.lower():
            # The file is inside the allowed folders (read() checked), so naming its hash reveals nothing new.
            why = (f"{source!r} has SHA-256 {actual}, not the pinned {pinned.lower()}; the image was not used "
                   "(point the spec at the intended image, or update the pin if the image changed on purpose)")
            raise SpecError(f"{fld}: {why}", [(fld, why)])

    def manifest_records(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in sorted(self.records.values(), key=lambda r: (r.fld, r.source))]
