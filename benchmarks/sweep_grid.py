"""The grid of the sweep-vs-processes benchmark: 4 configurations of the study base on cmr96.

U-Net base 16, depth 3, batch 16, CE + Dice, Adam, 15 epochs; learning rate {1e-3, 3e-3} x
weight decay {0, 1e-4} (all numeric: one cohort of 4 replicas); ``:grid8`` has 4 weight
decays {0, 1e-5, 1e-4, 1e-3} (8 runs), ``:grid16`` 4 x 4 learning rates {3e-4 ... 1e-2} and
weight decays (16 runs, the GPU suite's); ``:precisionN`` is the config's own run in float32
and in bfloat16 compute x N seeds (two cohorts; benchmarks/mixed_precision.py). With
``:single`` there is no sweep: one run, its hyperparameters given as ``--config.``
overrides, the way one training script per grid point is launched today.

Command (the comparison, docs/benchmarks.md):
  python benchmarks/sweep_vs_train.py
"""

from jaxseg import configs

AXES = {"optim.learning_rate": [1e-3, 3e-3], "optim.weight_decay": [0.0, 1e-4]}
# ``:grid8``: the 8-configuration grid of the PyTorch comparison (benchmarks/compare_torch.py).
AXES8 = {"optim.learning_rate": [1e-3, 3e-3], "optim.weight_decay": [0.0, 1e-5, 1e-4, 1e-3]}
# ``:grid16``: the GPU suite's grid (benchmarks/gpu_suite.py).
AXES16 = {"optim.learning_rate": [3e-4, 1e-3, 3e-3, 1e-2],
          "optim.weight_decay": [0.0, 1e-5, 1e-4, 1e-3]}


def get_config(arg=None):
    """The study base with fewer epochs and no early stopping."""
    c = configs.study()
    c.train.epochs = 15
    c.train.early_stopping = 0
    c.train.checkpoint_every = 5
    return c


def sweep(add, arg=None):
    """The 4 runs (8 with ``:grid8``, 16 with ``:grid16``, 2N with ``:precisionN``; none
    with ``:single``)."""
    if arg == "single":
        return
    from jaxseg.sweep.expand import grid

    if arg and arg.startswith("precision"):
        grid(add, {"model.dtype": ["float32", "bfloat16"]}, seeds=int(arg[9:] or 1))
        return
    grid(add, {"grid8": AXES8, "grid16": AXES16}.get(arg, AXES))
