"""Shared test set-up: a throwaway model cache and paths to the example specs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def pytest_configure(config: pytest.Config) -> None:
    # Tiny checkpoints are generated once per session into this cache (never the user's cache).
    if "DISCO_SPEC_CACHE" not in os.environ:
        import tempfile

        os.environ["DISCO_SPEC_CACHE"] = str(Path(tempfile.mkdtemp(prefix="disco-spec-test-")) / "cache")


@pytest.fixture
def specs_dir() -> Path:
    return SPECS


@pytest.fixture
def smoke_doc() -> dict:
    import tomllib

    return tomllib.loads((SPECS / "smoke.toml").read_text())
