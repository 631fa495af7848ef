"""What successive halving would have done to a finished full grid, replayed from its histories.

Under the ``sequential`` strategy a replica's training does not depend on the others, so a
halving run's surviving replicas compute exactly what the full grid's computed: its
decisions and cost follow from the full grid's ``history.jsonl`` files. This script replays
the rule (:func:`jaxseg.engine.halving.rung_decision`, the engine's own) for each
``min_epochs`` x ``eta`` x group asked for: at a rung the configurations still running
(not stopped early or diverged by then in the full run, not pruned before) compete by the
mean of their replicas' best ``--metric`` so far. It prints, for each setting, the
replica-steps left (each replica's epochs trained, the fewer of its full run's and its
pruning epoch, times its cohort's steps per epoch) as a share of the full grid's, the
best configuration by ``eval.select`` (a pruned run keeps its best so far) and, when that
run's best epoch comes before its end (so its best weights are the full run's), the paired
per-image test of the results tables against the full grid's best (Wilcoxon over the
validation images, :func:`jaxseg.sweep.compare.paired_images`; one comparison, no Holm).

It assumes every replica of a cohort has as many steps per epoch (its summary gives only
the cohort's total); a grid over ``data.fraction`` would need the per-replica counts.
A real halving run of the same setting must reproduce the replay's prunings and
replica-steps exactly; ``benchmarks/halving_compare.py`` measures one.

Commands (docs/studies/optimizer_lr/halving/, docs/studies/lr_search1/halving/):
  python benchmarks/halving_replay.py --workdir=runs/hc2/full --min_epochs=2,3,4,5,6,8 \\
      --eta=2,3 --out=docs/studies/optimizer_lr/halving/replay.json
  python benchmarks/halving_replay.py --workdir=runs/hc2/full --min_epochs=2,3,4,5,6,8 \\
      --eta=2,3 --cohorts=c000,c002,c003,c004 --out=docs/studies/lr_search1/halving/replay.json
"""

import itertools
import json
import os

from absl import app, flags

from jaxseg import workdir as workdir_lib
from jaxseg.engine import halving
from jaxseg.hparams import configuration_key
from jaxseg.sweep import compare

flags.DEFINE_string("workdir", None, "A finished full sweep (no halving).", required=True)
flags.DEFINE_list("min_epochs", ["2", "4"], "First rungs to replay.")
flags.DEFINE_list("eta", ["2", "3"], "Reduction factors to replay.")
flags.DEFINE_list("group", ["cohort", "grid"], "Ranking groups to replay.")
flags.DEFINE_string("metric", "dice", "The halving metric (higher is better).")
flags.DEFINE_string("select", "dice", "eval.select: what the best configuration is by.")
flags.DEFINE_list("cohorts", [], "Only these cohorts (a sub-grid: lr_search.py stage 1 is "
                  "optimizer_lr's c000, c002, c003, c004).")
flags.DEFINE_string("out", "", "Write the table as JSON here too.")
FLAGS = flags.FLAGS


def load(wd: str) -> dict:
    """Every run of a finished sweep: its key, cohort, epochs trained, steps/epoch, history."""
    with open(os.path.join(wd, workdir_lib.SWEEP)) as f:
        runs = json.load(f)["runs"]
    with open(os.path.join(wd, workdir_lib.PLAN)) as f:
        cohorts = json.load(f)["cohorts"]
    with open(os.path.join(wd, f"{workdir_lib.RESULTS}.json")) as f:
        rows = {r["run"]: r for r in json.load(f)["runs"]}
    out, epochs = {}, 0
    for c in cohorts:
        if FLAGS.cohorts and c["name"] not in FLAGS.cohorts:
            continue
        cdir = workdir_lib.cohort_path(wd, c["name"])
        with open(os.path.join(cdir, workdir_lib.SUMMARY)) as f:
            summary = json.load(f)
        assert not summary.get("halving"), f"{cdir} was trained with halving"
        epochs = max(epochs, int(summary["epochs"]))
        history = {r: {} for r in range(len(c["runs"]))}
        with open(os.path.join(cdir, workdir_lib.HISTORY)) as f:
            for line in f:
                rec = json.loads(line)
                history[rec["replica"]][rec["epoch"]] = rec
        trained = [int(rep["stopped_epoch"] or summary["epochs"]) for rep in summary["replicas"]]
        per_epoch = summary["replica_steps"] / sum(trained)
        for r, run in enumerate(c["runs"]):
            out[run] = {"key": configuration_key(runs[run]), "cohort": c["name"],
                        "trained": trained[r], "steps_per_epoch": per_epoch,
                        "history": history[r], "overrides": runs[run],
                        "best_epoch": rows[run]["best_epoch"], "case_dice": rows[run]["case_dice"]}
    return {"runs": out, "epochs": epochs}


def replay(grid: dict, min_epochs: int, eta: int, group: str) -> dict:
    """One setting's prunings, replica-steps and best configuration."""
    runs = grid["runs"]
    end = {r: v["trained"] for r, v in runs.items()}  # the epoch each run's training ends
    pruned = {}

    def best(r, upto, metric):
        values = [h[metric] for e, h in runs[r]["history"].items() if e <= upto]
        return max(values) if values else float("-inf")

    for rung in halving.rungs(grid["epochs"], min_epochs, eta):
        ids = sorted(runs)
        groups = [runs[r]["key"] if group == "grid" else (runs[r]["cohort"], runs[r]["key"])
                  for r in ids]
        running = [end[r] > rung and r not in pruned for r in ids]
        scores = [best(r, rung, FLAGS.metric) for r in ids]
        if group == "cohort":  # each cohort decides alone
            out = []
            for c in sorted({runs[r]["cohort"] for r in ids}):
                sel = [i for i, r in enumerate(ids) if runs[r]["cohort"] == c]
                p, _, _ = halving.rung_decision([groups[i] for i in sel],
                                                [scores[i] for i in sel],
                                                [running[i] for i in sel], eta)
                out += [sel[i] for i in p]
        else:
            out, _, _ = halving.rung_decision(groups, scores, running, eta)
        for i in out:
            pruned[ids[i]] = rung
            end[ids[i]] = rung
    steps = sum(end[r] * runs[r]["steps_per_epoch"] for r in runs)
    full = sum(v["trained"] * v["steps_per_epoch"] for v in runs.values())
    final = {r: best(r, end[r], FLAGS.select) for r in runs}
    top = max(final, key=lambda r: final[r])
    full_top = max(runs, key=lambda r: best(r, runs[r]["trained"], FLAGS.select))
    # The halving run's best holds the full run's best weights if it trained past them.
    test = (compare.paired_images(runs[full_top]["case_dice"], runs[top]["case_dice"])
            if runs[top]["best_epoch"] <= end[top] else None)
    return {"min_epochs": min_epochs, "eta": eta, "group": group,
            "rungs": list(halving.rungs(grid["epochs"], min_epochs, eta)),
            "replica_steps": round(steps), "full_replica_steps": round(full),
            "steps_share": steps / full, "pruned": {str(r): e for r, e in sorted(pruned.items())},
            "best": {"run": top, "config": runs[top]["overrides"], FLAGS.select: final[top]},
            "same_best": top == full_top, "paired_images": test}


def main(argv):
    del argv
    grid = load(FLAGS.workdir)
    rows = [replay(grid, int(m), int(e), g) for g, m, e in
            itertools.product(FLAGS.group, FLAGS.min_epochs, FLAGS.eta)]
    print("| group | min_epochs | eta | rungs | replica-steps | share | best | Dice | same best "
          "| per-image p |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cfg = ", ".join(f"{v}" for v in r["best"]["config"].values())
        print(f"| {r['group']} | {r['min_epochs']} | {r['eta']} | {r['rungs']} | "
              f"{r['replica_steps']} | {r['steps_share']:.1%} | {cfg} | "
              f"{r['best'][FLAGS.select]:.4f} | {'yes' if r['same_best'] else 'no'} | "
              + (f"{r['paired_images']['p']:.3f} |" if r["paired_images"] and not r["same_best"]
                 else "- |"))
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump({"workdir": FLAGS.workdir, "cohorts": FLAGS.cohorts or "all",
                       "metric": FLAGS.metric, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
