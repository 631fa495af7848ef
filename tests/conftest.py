"""Shared fixtures: the real data beside the project, and one TFDS cache per test session."""

import os

import pytest

SHARED = os.environ.get(
    "JAXSEG_SHARED_DATA",
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def shared_dir(name: str) -> str:
    """The real dataset folder, or a skip naming where it was looked for."""
    path = os.path.abspath(os.path.join(SHARED, name))
    if not os.path.isdir(path):
        pytest.skip(f"real data not found at {path} (set JAXSEG_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS cache shared by the whole session, so each real dataset is built once."""
    d = os.environ.get("JAXSEG_TEST_TFDS_DIR") or str(tmp_path_factory.mktemp("tfds"))
    return d


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory):
    """A persistent compilation cache shared by the CLI runs of one test session."""
    return str(tmp_path_factory.mktemp("xla_cache"))
