"""Canonical JSON (RFC 8785) and the SHA-256 ids built on it: spec hashes, manifest ids and recipe ids."""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

import rfc8785


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON."""
    return rfc8785.dumps(obj)


def sha256_canonical(obj: Any) -> str:
    return hashlib.sha256(canonical_bytes(obj)).hexdigest()


def spec_sha256(spec_document: Mapping[str, Any]) -> str:
    """SHA-256 of a spec document's canonical JSON."""
    return sha256_canonical(dict(spec_document))


def manifest_id(manifest_or_hashed: Mapping[str, Any]) -> str:
    """The id: SHA-256 of the canonical hashed part (pass a manifest or its hashed part)."""
    hashed = manifest_or_hashed.get("hashed", manifest_or_hashed)
    return sha256_canonical(hashed)


# What a render made, as opposed to what it was made from: left out of the recipe id (`items` is the set of
# plan items the outputs cover, derived from them).
RECIPE_LEAVES_OUT = ("outputs", "items")


def recipe_id(manifest_or_hashed: Mapping[str, Any]) -> str:
    """The recipe id: SHA-256 of the canonical hashed part without its outputs (RECIPE_LEAVES_OUT): the spec
    and plan hashes, every model's SHA-256, the code, packages, environment and input files. Two renders with
    one recipe id make the same images on a deterministic stack: the render cache's key (run.cache). Pass a
    manifest, its hashed part, or the recipe built before rendering (record.manifest.build_recipe)."""
    hashed = manifest_or_hashed.get("hashed", manifest_or_hashed)
    return sha256_canonical({k: v for k, v in hashed.items() if k not in RECIPE_LEAVES_OUT})
