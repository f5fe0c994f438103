import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shakespeare() -> str:
    """Tiny Shakespeare as shipped inside the package (the same text as ../shared/data/charlm)."""
    from rnnlab.data.text import bundled_corpus

    return bundled_corpus()


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    yield


def pytest_configure(config):
    os.environ.setdefault("TQDM_DISABLE", "1")
