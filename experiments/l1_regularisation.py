"""Study: L1 penalty on all kernels (lambda 1e-10...1e-2), and L1 + L2, on cmr96.

Command:
  jaxseg sweep --config=experiments/l1_regularisation.py --workdir=runs/l1_regularisation

Grid: 8 L1 lambdas x {no L2, L2 1e-4} = 16 runs in one cohort, one seed each.

Expected (79 min, 2 CPU cores, 2026-11-22 (before idle replicas were skipped)): L1 up to 1e-3
within a seed spread of none (0.83-0.87, best 1e-4: 0.868); 1e-2: 0.72 / 0.70 without / with
L2 1e-4 (1 seed each).
Notes, tables and figures: docs/studies/l1_regularisation/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid


def get_config(arg=None):
    """Adam with coupled L2, so L1 + L2 is the elastic-net penalty of the studies."""
    c = configs.study(arg)
    c.optim.weight_decay_mode = "coupled"
    return c


def sweep(add, arg=None):
    """L1 lambda x L2."""
    l1 = [0.0, 1e-10, 1e-8, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2]
    grid(add, {"optim.l1": configs.smoke_axis(l1, arg),
               "optim.weight_decay": configs.smoke_axis([0.0, 1e-4], arg)})
