"""Study: dropout with separate rates for encoder, bottleneck and decoder, on cmr96.

Command:
  jaxseg sweep --config=experiments/dropout_stages.py --workdir=runs/dropout_stages

Grid: each stage alone at 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, plus all stages together at the same
rates, plus no dropout = 25 runs in one cohort (rates are traced per replica). Expected run
time on 2 CPU cores (this project's dev machine, XLA CPU, jax 0.10.2): ~105 min by the
planner's --dry_run estimate of 2026-11-23 (training, evaluation and compilation; early
stopping shortens it; measured studies took 0.43x to 1.18x of it: 7-18% longer on 2026-11-22,
less than half on 2026-11-23, when the machine ran about twice as fast). Result: not yet
measured on the full grid; the smoke variant runs in CI.
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
