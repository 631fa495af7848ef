"""benchmarks/gpu_suite.sh in its tiny mode on CPU: every section runs and is written up."""

import json
import os
import subprocess
import sys

from conftest import ROOT, SHARED

from jaxseg.engine import autotune


def test_gpu_suite_tiny_mode_runs_every_section(tmp_path, tfds_dir):
    env = {**os.environ, "PYTHON": sys.executable}
    out = subprocess.run(["bash", "benchmarks/gpu_suite.sh", str(tmp_path), "--tiny",
                          f"--tfds_dir={tfds_dir}", f"--data={SHARED}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with open(tmp_path / "gpu_suite.json") as f:
        res = json.load(f)
    assert res["tiny"] and not res["errors"]
    timed = {(r["model"], r["R"], r["strategy"]) for r in res["strategies"] if "step_s" in r}
    assert timed == {("cmr96", r, s) for r, s in (
        (1, "sequential"), (4, "sequential"), (4, "vmap"), (4, "chunked:2"))}
    # auto's real measurement: every candidate at R = 4 timed, the fastest kept.
    auto = res["auto"]
    assert auto["source"] == "measured" and sorted(auto["timings"]) == [
        "chunked:2", "sequential", "vmap"]
    steps = {k: v["step_s"] for k, v in auto["timings"].items()}
    assert auto["label"] == autotune.pick(steps, autotune.candidates(4, "cpu"))
    assert [r["variant"] for r in res["dtype"]] == ["float32", "bfloat16"]
    assert len(res["grid16"]["jax_dice"]) == 4 and res["grid16"]["sweep_s"] > 0
    assert 0 <= res["acdc"]["volume_dice"] <= 1 and res["acdc"]["epochs"] == 1
    assert res["acdc"]["time_s"]["steps"] > 0
    md = (tmp_path / "gpu_suite.md").read_text()
    assert "| cmr96 | 4 | chunked:2 |" in md and "auto at R=4" in md
