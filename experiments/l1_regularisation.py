"""Study: L1 penalty on all kernels (lambda 1e-10...1e-2), and L1 + L2, on cmr96.

Command:
  jaxseg sweep --config=experiments/l1_regularisation.py --workdir=runs/l1_regularisation

Grid: 8 L1 lambdas x {no L2, L2 1e-4} = 16 runs in one cohort, one seed each.

Measured 2026-11-22 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above before sequential cohorts skipped idle replica-steps (so stopped replicas
still cost their steps): 79 min wall in two launches (62.5 min, interrupted after epoch 40,
then 16.5 min resumed by the same command; the test suite ran alongside for ~5 min).
Validation mean foreground Dice at each run's best epoch (one seed; seed spread in the
other studies ~0.01):
  L1 lambda   no L2   L2 1e-4
  0           0.861   0.846
  1e-10       0.846   0.854
  1e-8        0.850   0.848
  1e-6        0.848   0.842
  1e-5        0.854   0.852
  1e-4        0.868   0.849
  1e-3        0.828   0.844
  1e-2        0.722   0.698
Reading: L1 up to 1e-3 stays within about one seed spread of no penalty (0.83-0.87); 1e-2
costs 0.14-0.16 Dice (RV 0.52-0.54) and was still improving at epoch 48-50. 13 of the 16
runs stopped early (patience 10 evaluations).
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
