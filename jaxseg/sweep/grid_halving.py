"""Successive halving over a whole grid (``train.halving.group=grid``).

Every cohort of the sweep trains as a :func:`jaxseg.train.cohort_training` generator, all
of them held in this one process. At each rung the cohorts are advanced one after another
to the rung's evaluation (where each pauses), then the grid's configurations still running
are ranked together by :func:`jaxseg.engine.halving.rung_decision`, the decision is written
to ``<sweep>/halving.json`` and each cohort goes on with its share of the pruned replicas.

Configurations are told apart by their runs' full overrides (structural values included,
seed and fold left out: :func:`jaxseg.hparams.configuration_key`), so a configuration whose
seeds landed in two cohorts is still ranked once, by the mean of all its replicas.

Resume: a decision already in ``halving.json`` is applied as recorded; a cohort resumed from
a checkpoint before a rung trains to it again and gets the recorded decision, one resumed
past it already holds it in its tracker. A decision not yet recorded is taken when every
cohort still training has reached the rung, from the same evaluations as an uninterrupted
run, so kill -9 at any moment leads to the same decisions.
"""

import os

from absl import logging

from jaxseg import outputs, train
from jaxseg import workdir as workdir_lib
from jaxseg.engine import halving
from jaxseg.errors import JaxsegError
from jaxseg.hparams import configuration_key

# The fields every cohort must share: one rung schedule and ranking for the whole grid.
SHARED = ("train.epochs", "train.halving.min_epochs", "train.halving.eta",
          "train.halving.metric", "train.halving.group", "eval.select")


def check_plans(plans) -> None:
    """Refuses a grid whose cohorts would have different rungs or ranking.

    Raises:
      JaxsegError: naming the field and two cohorts that differ in it.
    """
    def get(config, dotted):
        for part in dotted.split("."):
            config = config[part]
        return config

    for field in SHARED:
        values = {p.name: get(p.config, field) for p in plans}
        a = plans[0].name
        b = next((n for n, v in values.items() if v != values[a]), None)
        if b is not None:
            raise JaxsegError(
                f"train.halving.group=grid ranks the whole grid at common rungs, but {field} "
                f"differs between cohorts ({a}: {values[a]}, {b}: {values[b]}); make it "
                "one value for the grid, or use train.halving.group=cohort")


def train_cohorts(plans, runs: list[dict], workdir: str, labels: dict) -> dict:
    """Trains the given cohorts with their rungs decided over all of them.

    Args:
      plans: the cohorts to train (not finished), every one of the grid's still to train.
      runs: the sweep's runs (dotted overrides, structural ones included).
      workdir: the sweep's folder (``halving.json`` goes there).
      labels: each cohort's progress prefix.

    Returns:
      ``{cohort name: summary}``.
    """
    if not plans:
        return {}
    check_plans(plans)
    eta = int(plans[0].config.train.halving.eta)
    keys = {p.name: [configuration_key(runs[i]) for i in p.runs] for p in plans}
    path = os.path.join(workdir, workdir_lib.HALVING)
    record = workdir_lib.read_halving(workdir)
    decided = record.setdefault("rungs", {})
    gens = {p.name: train.cohort_training(p.config, workdir_lib.cohort_path(workdir, p.name),
                                          p.overrides, labels[p.name]) for p in plans}
    runs_of = {p.name: list(p.runs) for p in plans}
    paused, summaries = {}, {}

    def advance(name, pruned):
        try:
            paused[name] = gens[name].send(pruned)
        except StopIteration as done:
            summaries[name] = done.value
            paused.pop(name, None)

    try:
        for name in gens:
            advance(name, None)
        while paused:
            epoch = min(r.epoch for r in paused.values())
            at = sorted(n for n in paused if paused[n].epoch == epoch)
            decision = decided.get(str(epoch))
            if decision is None:
                ahead = sorted(set(paused) - set(at))
                if ahead:  # they passed this rung, so its decision must have been recorded
                    raise JaxsegError(f"{path} lacks the rung of epoch {epoch} that cohorts "
                                      f"{', '.join(ahead)} already passed; restore it, or "
                                      "delete the sweep's folder to start over")
                decision = _decide(epoch, [(keys[n], paused[n]) for n in at],
                                   [runs_of[n] for n in at], eta)
                decided[str(epoch)] = decision
                outputs.write_json(path, record)
            pruned = set(decision["pruned_runs"])
            for n in at:
                advance(n, [r for r, run in enumerate(runs_of[n]) if run in pruned])
    finally:
        for g in gens.values():
            g.close()  # a cohort left paused (an error elsewhere) releases its lock
    return summaries


def _decide(epoch: int, cohorts: list, run_ids: list, eta: int) -> dict:
    """The rung decision over the paused cohorts: ``{"scores", "kept", "pruned_runs"}``."""
    groups, rank_best, running, ids = [], [], [], []
    for (keys, rung), runs_ in zip(cohorts, run_ids, strict=True):
        groups += keys
        rank_best += rung.rank_best
        running += rung.running
        ids += runs_
    pruned, scores, kept = halving.rung_decision(groups, rank_best, running, eta)
    logging.info("grid halving at epoch %d: %d of %d configurations go on, %d run(s) "
                 "pruned; kept (mean best so far): %s", epoch, len(kept), len(scores),
                 len(pruned), "; ".join(f"{k} {scores[k]:.4f}" for k in sorted(
                     kept, key=lambda k: -scores[k])))
    return {"scores": scores, "kept": sorted(kept), "pruned_runs": sorted(ids[r] for r in pruned)}
