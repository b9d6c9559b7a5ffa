"""Canonical JSON (RFC 8785) and the SHA-256 ids built on it: spec hashes and manifest ids."""

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
