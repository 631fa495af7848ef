"""Study: learning-rate schedules x optimizer, on cmr96.

Schedules: none, step x0.1 every 100 epochs, exponential 0.97 and 0.99 per epoch,
reduce-on-plateau, constant 50 epochs then x0.8 every 10.

Command:
  jaxseg sweep --config=experiments/schedulers.py --workdir=runs/schedulers

Grid: 6 schedules x 3 optimizers = 18 runs in 3 cohorts (one per optimizer: the schedule is a
per-epoch factor set by the host, so it may differ per replica). Every run trains all 150
epochs (no early stopping). To split it over two sessions sharing the workdir: --cohorts=c000,
then --cohorts=c001,c002.

Measured 2026-11-23 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above as committed, nothing else running: 153 min 43 s (about 51 min per cohort);
--dry_run --calibrate just before said 147 min (0.44 s/step), the built-in throughput 226 min.
Validation mean foreground Dice at each run's best epoch (eval.select = dice), 1 seed:

  schedule               Adam 1e-3   SGD+m 1e-2   RMSProp 1e-3
  none                   0.858       0.804        0.881
  step x0.1 at 100       0.858       0.798        0.881
  exponential 0.97       0.819       0.737        0.850
  exponential 0.99       0.849       0.772        0.856
  plateau                0.852       0.773        0.868
  50, then x0.8 per 10   0.858       0.795        0.877

No schedule beat a constant rate for any optimizer. Adam's and RMSProp's step runs equal
their constant runs to the last digit: their best epochs (100 and 59) come before the decay
acts. The 50-epoch hold's runs peaked at epoch 45 (Adam: before any cut) and 59 (RMSProp,
below its constant run's 0.881 at the same epoch). Exponential 0.97 (the rate /20 by epoch
100) is the worst for every optimizer; plateau cut the rate to its floor (1e-3 of the base).
SGD+m at 1e-2 trails at every schedule: lr_search found its best rate at 1e-1 (0.861 in 50
epochs). One seed: differences under about 0.02 are within the seed spread seen elsewhere.
Tables and figures: docs/studies/schedulers/.
"""

from jaxseg import configs

SCHEDULES = [
    {"optim.schedule": "constant"},
    {"optim.schedule": "step", "optim.step_every": 100, "optim.step_factor": 0.1},
    {"optim.schedule": "exponential", "optim.decay_rate": 0.97},
    {"optim.schedule": "exponential", "optim.decay_rate": 0.99},
    {"optim.schedule": "plateau"},
    {"optim.schedule": "piecewise", "optim.hold_epochs": 50, "optim.piece_every": 10,
     "optim.piece_factor": 0.8},
]


def get_config(arg=None):
    """The study's base config, 150 epochs (so the step and piecewise schedules act)."""
    c = configs.study(arg)
    if arg != "smoke":
        c.train.epochs = 150
        c.train.early_stopping = 0
    return c


def sweep(add, arg=None):
    """Every schedule with Adam, SGD+momentum and RMSProp."""
    for opt in configs.smoke_axis(["adam", "sgd", "rmsprop"], arg, keep=1):
        for sched in configs.smoke_axis(SCHEDULES, arg):
            lr = 1e-2 if opt == "sgd" else 1e-3
            add(**{"optim.name": opt, "optim.learning_rate": lr, **sched})
