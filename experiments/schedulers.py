"""Study: learning-rate schedules x optimizer, on cmr96.

Schedules: none, step x0.1 every 100 epochs, exponential 0.97 and 0.99 per epoch,
reduce-on-plateau, constant 50 epochs then x0.8 every 10.

Command:
  jaxseg sweep --config=experiments/schedulers.py --workdir=runs/schedulers

Grid: 6 schedules x 3 optimizers = 18 runs in 3 cohorts (one per optimizer: the schedule is a
per-epoch factor set by the host, so it may differ per replica). Every run trains all 150
epochs (no early stopping). To split it over two sessions sharing the workdir: --cohorts=c000,
then --cohorts=c001,c002.

Expected (153 min 43 s, 2 CPU cores, 2026-11-23): none / step (equal: best epoch before the
decay) / exp 0.97 / exp 0.99 / plateau / 50+x0.8: Adam 1e-3 0.858 / 0.858 / 0.819 / 0.849 /
0.852 / 0.858; RMSProp 1e-3 0.881 / 0.881 / 0.850 / 0.856 / 0.868 / 0.877; SGD+m 1e-2 0.804 /
0.798 / 0.737 / 0.772 / 0.773 / 0.795: no schedule beat a constant rate (1 seed).
Notes, tables and figures: docs/studies/schedulers/
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
