"""Study: the learning-rate search of the source studies, as a two-stage sweep.

An order-of-magnitude grid per optimizer, then a finer grid around each optimizer's best.

Commands:
  jaxseg sweep --config=experiments/lr_search.py --workdir=runs/lr_search1
  jaxseg sweep --config=experiments/lr_search.py:stage2=runs/lr_search1 --workdir=runs/lr_search2

Stage 1: 4 optimizers x 5 rates (1e-5...1e-1) = 20 runs, 4 cohorts. Stage 2 reads stage 1's
results.json and tries best x {1/4, 1/2, 1, 2, 4} per optimizer (the "bisection" step): 20
runs, 4 cohorts. One seed.

Expected (23 min 45 s + 32 min 40 s, 2 CPU cores, 2026-11-23): stage 1 best: Adam 1e-2 0.888,
RMSProp 1e-3 0.869, SGD+m 1e-1 0.861, Adagrad 1e-1 0.852; after stage 2: RMSProp 4e-3 0.900,
Adam 5e-3 0.897, SGD+m 0.2 0.885, Adagrad 0.4 0.873 (1 seed).
Notes, tables and figures: docs/studies/lr_search1/

Stage 1 with successive halving (min_epochs 2, eta 2), from the same cohorts of
optimizer_lr.py's side-by-side launch (2026-12-01, 2 CPU cores, commit b1f03a5): 34.7% of
the replica-steps and 40.5% of the cohort time; best RMSProp 1e-3 0.869, not distinguishable
from the full grid's Adam 1e-2 0.888 (Wilcoxon over 20 images p = 0.13). The PyTorch
reference under Optuna (benchmarks/optuna_peer.py, same grid and rungs, same evening): 400 s
against jaxseg's 943 s, best Adagrad 1e-1 0.858. Other rungs and group=grid replayed from
optimizer_lr.py's full grid of 2026-12-02 (benchmarks/halving_replay.py): no setting keeps
Adam 1e-2 under 35% of the replica-steps (min_epochs 5, eta 3: 38.8-41.6%); grid (4, 3)
keeps SGD 1e-1 0.861 at 31.0% (p = 0.058). docs/studies/lr_search1/halving/
"""

import json
import os

from jaxseg import configs
from jaxseg.errors import JaxsegError

OPTIMIZERS = ["adam", "sgd", "rmsprop", "adagrad"]
COARSE = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
FINE = [0.25, 0.5, 1.0, 2.0, 4.0]


def _parse(arg):
    """``None`` | ``smoke`` | ``stage2=DIR`` | ``smoke,stage2=DIR``."""
    parts = (arg or "").split(",")
    smoke = "smoke" in parts
    stage1 = next((p.split("=", 1)[1] for p in parts if p.startswith("stage2=")), None)
    return smoke, stage1


def get_config(arg=None):
    """The study's base config."""
    smoke, _ = _parse(arg)
    return configs.study("smoke" if smoke else None)


def _best_per_optimizer(stage1_dir):
    path = os.path.join(stage1_dir, "results.json")
    if not os.path.exists(path):
        raise JaxsegError(f"stage 2 needs stage 1's results: {path} not found")
    with open(path) as f:
        rows = json.load(f)["runs"]
    best = {}
    for r in rows:
        name, dice = r["optim.name"], r.get("dice")
        if dice is not None and (name not in best or dice > best[name][1]):
            best[name] = (r["optim.learning_rate"], dice)
    return {k: v[0] for k, v in best.items()}


def sweep(add, arg=None):
    """Stage 1: coarse grid; stage 2: fine grid around each optimizer's best."""
    smoke, stage1 = _parse(arg)
    tag = "smoke" if smoke else None
    optimizers = configs.smoke_axis(OPTIMIZERS, tag)
    if stage1 is None:
        for name in optimizers:
            for lr in configs.smoke_axis(COARSE, tag):
                add(**{"optim.name": name, "optim.learning_rate": lr})
        return
    best = _best_per_optimizer(stage1)
    for name in optimizers:
        if name not in best:
            continue
        for f in configs.smoke_axis(FINE, tag):
            add(**{"optim.name": name, "optim.learning_rate": best[name] * f})
