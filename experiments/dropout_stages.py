"""Study: dropout with separate rates for encoder, bottleneck and decoder, on cmr96.

Command:
  jaxseg sweep --config=experiments/dropout_stages.py --workdir=runs/dropout_stages

Grid: each stage alone at 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, plus all stages together at the same
rates, plus no dropout = 25 runs in one cohort (rates are traced per replica), one seed each.

Measured 2026-11-23 on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2), the
command above as committed: 44 min 45 s wall (the planner's --dry_run estimated 104.6 min);
niced test runs shared the machine for about half of it (epochs with all 25 replicas took
52-61 s alone, up to 68 s beside the tests). 13 of 25 runs stopped early (patience 10
evaluations on validation loss). Validation mean foreground Dice at each run's best epoch
(* stopped early); no dropout: 0.855*:
  rate   encoder  bottleneck  decoder  all stages
  0.05   0.864    0.859       0.851*   0.866
  0.1    0.867    0.858*      0.842*   0.865
  0.2    0.865    0.853*      0.851    0.866
  0.4    0.852    0.848*      0.843*   0.809
  0.6    0.513*   0.866       0.847*   0.372*
  0.8    0.521*   0.835*      0.775    0.232*
Reading: up to 0.2 in any stage the runs sit at 0.84-0.87, within the 0.01 seed spread the
loss study measured for this baseline (one seed here: no ranking among them). The bottleneck
tolerates dropout best (0.866 at 0.6, 0.835 at 0.8); the decoder loses at 0.8 (0.775); the
encoder, and all stages together, collapse at 0.6 and above. Those four collapsed runs were
stopped by early stopping at epochs 11-33 with their best validation loss at epochs 1-17:
heavy dropout makes the validation loss erratic, so how much of the collapse is dropout and
how much early stopping this grid does not tell (a rerun of those rates with
--config.train.early_stopping=0, or a later train.early_stopping_start, would).
Tables and figures: docs/studies/dropout_stages/.
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
