"""Shared test set-up: a throwaway model cache and paths to the example specs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def pytest_configure(config: pytest.Config) -> None:
    # One torch thread in every test process (each xdist worker, and every CLI the tests start, which
    # inherits the variable): CPU reductions split work by thread, so the CPU goldens (made with
    # OMP_NUM_THREADS=1) stay byte-exact however many workers run. The environment fingerprint of a test
    # render records it (`threads.torch = 1`, `env_vars.OMP_NUM_THREADS = "1"`), as the goldens' do.
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    # The render cache off for every test (and every CLI a test starts): a test that renders twice checks the
    # engine, or perturbs it; only the cache's own tests turn it on (tests/test_render_cache.py).
    os.environ["DISCO_SPEC_RENDER_CACHE"] = "off"
    import tempfile

    # Tiny checkpoints are generated once per session into this cache (never the user's cache).
    if "DISCO_SPEC_CACHE" not in os.environ:
        os.environ["DISCO_SPEC_CACHE"] = str(Path(tempfile.mkdtemp(prefix="disco-spec-test-")) / "cache")
    # A render a test tracks without naming a store goes to a throwaway sqlite store of this process (each
    # xdist worker its own: two processes migrating one new sqlite file race), never to ./mlflow.db in the
    # checkout. Tests of MLflow's own default remove the variable (monkeypatch.delenv).
    ours = os.environ.get("DISCO_SPEC_TEST_MLFLOW_URI")
    if "MLFLOW_TRACKING_URI" not in os.environ or os.environ["MLFLOW_TRACKING_URI"] == ours:
        store = Path(tempfile.mkdtemp(prefix="disco-spec-mlflow-")) / "mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = os.environ["DISCO_SPEC_TEST_MLFLOW_URI"] = f"sqlite:///{store}"


@pytest.fixture
def specs_dir() -> Path:
    return SPECS


@pytest.fixture
def smoke_doc() -> dict:
    import tomllib

    return tomllib.loads((SPECS / "smoke.toml").read_text())


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    """A model cache private to one test module (for tests that tamper with or count cached files)."""
    return tmp_path_factory.mktemp("disco-cache")


@pytest.fixture
def cache(module_cache: Path, monkeypatch) -> Path:
    """Point DISCO_SPEC_CACHE at the module's private cache for one test."""
    monkeypatch.setenv("DISCO_SPEC_CACHE", str(module_cache))
    return module_cache
