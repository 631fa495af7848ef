"""Study: dropout with separate rates for encoder, bottleneck and decoder, on cmr96.

Command:
  jaxseg sweep --config=experiments/dropout_stages.py --workdir=runs/dropout_stages

Grid: each stage alone at 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, plus all stages together at the same
rates, plus no dropout = 25 runs in one cohort (rates are traced per replica), one seed each.

Expected (44 min 45 s, 2 CPU cores, 2026-11-23): up to 0.2 in any stage 0.84-0.87 (none 0.855;
within seed spread); bottleneck tolerates 0.6 (0.866); decoder 0.8: 0.775; encoder or all
stages ≥ 0.6 collapse (0.23-0.52), stopped early by erratic validation loss (1 seed).
Notes, tables and figures: docs/studies/dropout_stages/
"""

from jaxseg import configs

RATES = [0.05, 0.1, 0.2, 0.4, 0.6, 0.8]
STAGES = ("encoder", "bottleneck", "decoder")


def get_config(arg=None):
    """The study's base config."""
    return configs.study(arg)


def sweep(add, arg=None):
    """One stage at a time, then all stages, over the rate grid."""
    add(label="none")
    for rate in configs.smoke_axis(RATES, arg):
        for stage in STAGES:
            add(label=stage, **{f"model.dropout.{stage}": rate})
        add(label="all", **{f"model.dropout.{s}": rate for s in STAGES})
