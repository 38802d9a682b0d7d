"""Shared test set-up: an isolated cache, no downloads, quiet TensorFlow.

The Keras backend is chosen by KERAS_BACKEND before anything imports keras; `make test`
runs the unit tests once per backend.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty course cache and no network: what a fresh offline machine looks like."""
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    return tmp_path / "cache"
