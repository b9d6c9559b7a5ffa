"""The one file hasher: the SHA-256 of a file's bytes, read in 1 MiB blocks.

Every content hash disco-spec writes has one definition and one name:

    file sha256      hashes.file_sha256 (here): outputs, spec.json/plan.json, weight files (models/weights.py
                     remembers them across runs), the input video and its extracted frames, state images
    spec_sha256      record/ids.py spec_sha256: RFC 8785 canonical JSON of the spec document; the manifest,
                     run_state.json, sweep.json, PNG `info` and MLflow tags all use this one
    manifest id      record/ids.py manifest_id: RFC 8785 canonical JSON of the manifest's `hashed` part
    recipe id        record/ids.py recipe_id: the manifest id's hashed part without its outputs (what a render
                     was made from: spec, plan, models, code, packages, environment, inputs); the key of the
                     render cache (run/cache.py) and the `disco_spec.recipe_id` MLflow tag
    plan_sha256      plan/resolve.py Plan.sha256: the plan's own JSON (Plan.to_json)
    pixels_sha256    record/pngmeta.py pixels_sha256: an image's mode, size and decoded pixels
    video sha256     record/mp4meta.py media_sha256: an mp4's bytes without the metadata box that carries its
                     spec and manifest id (so stamping the id into the file does not change the id)
    input sha256     run/inputs.py InputStore.read: bytes_sha256 of an init image or image prompt as read
                     (URLs have no file), the same value as file_sha256 of a local file
"""

from __future__ import annotations

import hashlib
import os

_BLOCK = 1 << 20


def bytes_sha256(data: bytes) -> str:
    """SHA-256 of bytes in memory: what file_sha256 gives once they are written (a PNG encoded to check it)."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the file at `path`, streamed (OSError when it cannot be read)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()
