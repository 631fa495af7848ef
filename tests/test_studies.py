"""Every study of the catalogue runs end to end (its `:smoke` variant) through `run_sweep`.

In the test process rather than one `jaxseg sweep` process per study: the command line's own
path (flags, experiment loading, one-line errors) is tested in test_sweep.py and
test_faults.py; what this file checks is each experiment file's grid through planning,
training and the result tables, and a process per study cost its start-up (importing jax,
TFDS and the rest: about 4 s of CPU each) for nothing more.
"""

import json
import logging
import os

import pytest
from conftest import STUDIES

from jaxseg.sweep import expand
from jaxseg.sweep.run import run_sweep

# Run end to end elsewhere, on real data, through the command line: the same smoke grid
# would only train its three networks a second time.
ELSEWHERE = {"architectures.py": "tests/test_architectures.py (cmr96_sweep)"}


@pytest.mark.parametrize("path", STUDIES, ids=os.path.basename)
def test_smoke_sweep_end_to_end(path, tfds_dir, tmp_path, caplog):
    if os.path.basename(path) in ELSEWHERE:
        pytest.skip(f"its smoke grid runs in {ELSEWHERE[os.path.basename(path)]}")
    module, arg = expand.load_experiment(f"{path}:smoke")
    config = module.get_config(arg)
    config.data.tfds_dir = tfds_dir
    runs = expand.expand(module, arg)
    with caplog.at_level(logging.INFO):
        run_sweep(config, runs, str(tmp_path), title=os.path.basename(path))
    with open(tmp_path / "results.json") as f:
        res = json.load(f)
    assert len(res["runs"]) == len(runs)
    assert all(r["status"] in ("finished", "stopped") and r["dice"] is not None
               for r in res["runs"])
    assert (tmp_path / "results.md").read_text().count("|") > 10
    assert "grid: cohorts" in caplog.text
