"""Study: the right ventricle alone (binary, sigmoid head): losses x regularisation, on cmr96.

The loss and regularisation study of the catalogue segmented the RV against everything
else: ``data.classes=RV`` maps MYO and LV to background when the data are prepared
(jaxseg/data/classes.py), and the U-Net's head is one sigmoid logit.

Command:
  jaxseg sweep --config=experiments/rv_binary.py --workdir=runs/rv_binary

Grid: 5 losses (BCE, Dice, inverse Dice, the switching loss BCE + λ Dice + (1-λ) inverse
Dice at λ = 0.5, and the weighted mix 0.5 BCE + Dice) x 4 regularisations (none, L1 1e-4,
coupled L2 1e-4, both), 1 seed = 20 runs in one cohort (the losses are weightings of one
set of terms, the penalties numbers). One seed, as the other large grids (l2_fraction,
dropout_stages, optimizer_lr): the paired per-image test of the results tables tells the
configurations apart without a second seed, and 2 seeds (~167 min by the planner) would
not fit one working session of the 2-core machine it is measured on.

Expected (measured 2026-12-02 on 2 CPU cores at commit fdc9411, 30 min 34 s; validation RV
Dice, 1 seed): best 0.5 BCE + Dice with L1 1e-4, 0.790; mean over the penalties Dice 0.756,
0.5 BCE + Dice 0.747, switching 0.728, BCE 0.672, inverse Dice 0.650 (0.789 with L2, but
0.615 / 0.494 with L1 / L1 + L2: the only configurations the paired per-image test tells
from the best). Notes, tables and figures: docs/studies/rv_binary/
"""

from jaxseg import configs
from jaxseg.sweep.expand import grid

LOSSES = {
    "bce": {"bce": 1.0},
    "dice": {"dice": 1.0},
    "inv_dice": {"inv_dice": 1.0},
    "switching(0.5)": {"switching": 1.0},
    "0.5bce+dice": {"bce": 0.5, "dice": 1.0},
}
# (L1 on the kernels, coupled L2): none, L1, L2, L1 + L2 (l1_regularisation's best L1).
PENALTIES = {"none": (0.0, 0.0), "l1": (1e-4, 0.0), "l2": (0.0, 1e-4), "l1+l2": (1e-4, 1e-4)}


def get_config(arg=None):
    """RV against the rest, a sigmoid head; Adam with coupled L2 (L1 + L2: elastic net)."""
    c = configs.study(arg)
    c.data.classes = "RV"
    c.model.head = "sigmoid"
    c.optim.weight_decay_mode = "coupled"
    return c


def sweep(add, arg=None):
    """Every loss x every penalty, 1 seed (2 losses x 2 penalties for smoke)."""
    for name in configs.smoke_axis(list(LOSSES), arg):
        for pen in configs.smoke_axis(list(PENALTIES), arg):
            l1, l2 = PENALTIES[pen]
            grid(add, {}, seeds=1, label=f"{name}, {pen}",
                 **{"loss.weights": LOSSES[name], "optim.l1": l1, "optim.weight_decay": l2})
