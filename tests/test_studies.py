"""Every study of the catalogue runs end to end through `jaxseg sweep` (its `:smoke` variant)."""

import json
import os

import pytest
from conftest import STUDIES

from jaxseg.sweep import expand


@pytest.mark.parametrize("path", STUDIES, ids=os.path.basename)
def test_smoke_sweep_end_to_end(path, jaxseg, tmp_path):
    out = jaxseg(["sweep", f"--config={path}:smoke", f"--workdir={tmp_path}"])
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "results.json") as f:
        res = json.load(f)
    module, _ = expand.load_experiment(path)
    assert len(res["runs"]) == len(expand.expand(module, "smoke"))
    assert all(r["status"] in ("finished", "stopped") and r["dice"] is not None
               for r in res["runs"])
    assert (tmp_path / "results.md").read_text().count("|") > 10
    assert "grid: cohorts" in out.stderr


