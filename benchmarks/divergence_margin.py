"""How far healthy runs stay below ``train.divergence_loss``: the numbers behind its default.

For every replica of a workdir's cohorts: its largest epoch training loss per unit of loss
weight (the quantity the bound is compared with) and its largest loss over its first
epoch's. Run on a finished study's workdir:

  python benchmarks/divergence_margin.py runs/loss_functions
"""

import json
import os
import sys

from jaxseg import outputs
from jaxseg import workdir as workdir_lib


def margins(path: str) -> list[dict]:
    """One row per replica: ``{"cohort", "replica", "per_weight", "over_first", "status"}``."""
    rows = []
    for cohort in workdir_lib.Workdir(path).cohorts:
        with open(os.path.join(cohort.dir, workdir_lib.REPLICAS)) as f:
            table = json.load(f)["hyperparameters"]
        weights = [sum(v[r] for k, v in table.items() if k.startswith("loss.weights."))
                   for r in range(len(table["seed"]))]
        losses = {}
        for rec in outputs.read_jsonl(os.path.join(cohort.dir, workdir_lib.HISTORY)):
            if rec["train_loss"] is not None:
                losses.setdefault(rec["replica"], []).append(rec["train_loss"])
        for rep in cohort.replicas:
            v = losses.get(rep.index, [])
            if v:
                rows.append({"cohort": cohort.name, "replica": rep.index, "status": rep.status,
                             "per_weight": max(v) / max(weights[rep.index], 1.0),
                             "over_first": max(v) / v[0]})
    return rows


if __name__ == "__main__":
    rows = [r for r in margins(sys.argv[1]) if r["status"] != "diverged"]
    worst = max(rows, key=lambda r: r["per_weight"])
    print(f"{len(rows)} healthy replicas; largest epoch loss per unit loss weight "
          f"{worst['per_weight']:.2f} ({worst['cohort']}/{worst['replica']}); largest over "
          f"the first epoch's {max(r['over_first'] for r in rows):.2f}")
