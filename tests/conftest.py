"""Shared fixtures: the real data beside the project, and one TFDS cache per test session."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXPERIMENTS = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py")))
# The catalogue's studies: the experiment files with a grid (each with a `:smoke` variant),
# but the quickstart; the others are single-run recipes (the baselines, acdc_crop).
STUDIES = [p for p in EXPERIMENTS
           if "\ndef sweep(" in open(p).read() and "quickstart" not in p]
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
    d = os.environ.get("JAXSEG_TEST_TFDS_DIR")
    if not d and os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist workers share one cache (the parent of their own temporary folders):
        # each set is prepared once; a second worker waits on the builder's file lock.
        d = str(tmp_path_factory.getbasetemp().parent / "tfds")
        os.makedirs(d, exist_ok=True)
    return d or str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory):
    """A persistent compilation cache shared by the CLI runs of one test session."""
    return str(tmp_path_factory.mktemp("xla_cache"))


@pytest.fixture
def jaxseg(tfds_dir, xla_cache):
    """Runs the `jaxseg` command line (a fresh process) with the session's caches."""
    def run(args):
        return subprocess.run([sys.executable, "-m", "jaxseg.main", *args,
                               f"--config.data.tfds_dir={tfds_dir}",
                               f"--compilation_cache={xla_cache}"],
                              cwd=ROOT, capture_output=True, text=True)
    return run


@pytest.fixture(scope="session", autouse=True)
def in_process_compilation_cache(xla_cache):
    """The persistent compilation cache for in-process runs too: the engine tests build
    several cohorts with identical programs (only hyperparameter values differ)."""
    import jax

    jax.config.update("jax_compilation_cache_dir", xla_cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
