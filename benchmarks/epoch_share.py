"""The non-step share of an epoch: where an epoch's wall time goes besides the steps.

Trains an experiment's cohort for N epochs and compares each epoch's wall time, from the
start of its steps to the start of the next epoch's (evaluation, history, checkpoint and
bookkeeping included), with its steps (``Cohort.run_epoch`` timed until its results are
ready). ``run_epoch`` is wrapped from outside, so the same script measures a checkout from
before ``summary.json`` had ``time_s`` (pass its root in PYTHONPATH). The first epoch
(compilation) and the last (no next start) are left out. Prints one JSON line.

Command (docs/benchmarks.md, "Host work off the training path"; BEFORE a worktree of the
older commit):
  for root in BEFORE .; do (cd $root && PYTHONPATH=$root python \
      $OLDPWD/benchmarks/epoch_share.py experiments/cmr96_baseline.py /tmp/w_$RANDOM 15); done
"""

import importlib.util
import json
import sys
import time

import jax
import numpy as np

from jaxseg import train
from jaxseg.engine import cohort as co

STARTS, STEPS = [], []
_run_epoch = co.Cohort.run_epoch


def run_epoch(self, *args, **kwargs):
    """``Cohort.run_epoch``, timed until its state and accumulators are ready."""
    t0 = time.perf_counter()
    STARTS.append(t0)
    out = jax.block_until_ready(_run_epoch(self, *args, **kwargs))
    STEPS.append(time.perf_counter() - t0)
    return out


def main():
    co.Cohort.run_epoch = run_epoch
    experiment, workdir, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = importlib.util.spec_from_file_location("experiment", experiment)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.train.epochs = epochs
    s = train.train_and_evaluate(config, workdir)
    e, st = np.diff(STARTS)[1:], np.array(STEPS[1:-1])
    best = s["replicas"][0]["best"]
    print(json.dumps({
        "replicas": len(s["replicas"]), "epochs": len(STARTS),
        "first_epoch_s": STARTS[1] - STARTS[0],
        "median_epoch_s": float(np.median(e)), "median_steps_s": float(np.median(st)),
        "nonstep_share_total": float(1 - st.sum() / e.sum()),
        "nonstep_share_median": float(np.median(1 - st / e)), "time_s": s.get("time_s"),
        "strategy": s["strategy"], "best": {k: best.get(k) for k in ("dice", "bf", "hd95")}}))


if __name__ == "__main__":
    main()
