"""The environment fingerprint finds the source checkout it runs from (the manifest's code section)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from disco_spec.record.environment import code_checkout

ROOT = Path(__file__).resolve().parent.parent


def test_code_version_names_the_checkouts_commit() -> None:
    if not (ROOT / ".git").exists():
        pytest.fail("the test suite runs from a git checkout (CI clones the repository)")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    got = code_checkout()
    assert got["git_commit"] == head
    assert isinstance(got["git_dirty"], bool)
