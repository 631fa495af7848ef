"""A study with and without successive halving, side by side: replica-steps, wall time, best.

Runs ``jaxseg sweep`` on one experiment twice in one launch of this script, one after the
other on the same machine, each with an empty compilation cache of its own (both compile
from scratch, as a first run does): the full grid, then the same grid with
``train.halving``. Then compares them: the replica-steps both computed (each cohort's
``summary.json``), their wall times, the best configuration of each, and whether the
halving run's best can be told from the full grid's best by the paired per-image test of
the results tables (``jaxseg.sweep.compare``; with one seed the seed test has no pairs).

Command (the measurements in docs/studies/<study>/halving.md):
  python benchmarks/halving_compare.py --experiment=experiments/optimizer_lr.py \\
      --workdir=runs/halving_optimizer_lr --min_epochs=2 --eta=3
``--group=grid`` ranks the whole grid at each rung (``train.halving.group``).
``--sweeps=halving`` runs only the halving sweep, against a full one already in
``--workdir`` (its wall time read from ``full.wall_s``, which this script writes for each
sweep it runs). ``--compare_only`` re-reads two finished workdirs without training.
A grid that is a subset of another's (``experiments/lr_search.py`` stage 1 is
``optimizer_lr``'s Adam, SGD, RMSProp and Adagrad cohorts, the same computations) can be
compared with the larger grid's full run restricted to those cohorts, on both sides:
  python benchmarks/halving_compare.py --compare_only --workdir=runs/halving_optimizer_lr \
      --cohorts=c000,c002,c003,c004
Times are then each cohort's ``process_time_s`` summed (both sides), not a launch's wall time.
"""

import json
import os
import platform
import subprocess
import sys
import time

import jax
from absl import app, flags

from jaxseg import workdir as workdir_lib
from jaxseg.sweep import compare, results

flags.DEFINE_string("experiment", "experiments/optimizer_lr.py", "The experiment file.")
flags.DEFINE_string("workdir", "runs/halving", "Holds full/ and halving/ (and their caches).")
flags.DEFINE_integer("min_epochs", 2, "train.halving.min_epochs of the halving run.")
flags.DEFINE_integer("eta", 3, "train.halving.eta of the halving run.")
flags.DEFINE_enum("group", "cohort", ["cohort", "grid"], "train.halving.group of the halving run.")
flags.DEFINE_list("sweeps", ["full", "halving"], "Which of the two sweeps to run, in order "
                  "(the others must be in --workdir already).")
flags.DEFINE_bool("compare_only", False, "Only compare the two workdirs already there.")
flags.DEFINE_multi_string("extra", [], "More flags for both sweeps.")
flags.DEFINE_list("cohorts", [], "--compare_only: only these cohorts of both runs.")
FLAGS = flags.FLAGS


def _sweep(name: str, halving: list[str]) -> float:
    """Runs one sweep into ``workdir/name`` with its own empty XLA cache; its wall time."""
    wd = os.path.join(FLAGS.workdir, name)
    cmd = [sys.executable, "-m", "jaxseg.main", "sweep", f"--config={FLAGS.experiment}",
           f"--workdir={wd}", f"--compilation_cache={wd}_xla", *halving, *FLAGS.extra]
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0


def _read(wd: str, cohorts: list[str] | None = None) -> dict:
    """A finished sweep's results (only ``cohorts``' runs when given) and summed cohort counts."""
    with open(os.path.join(wd, f"{workdir_lib.RESULTS}.json")) as f:
        res = json.load(f)
    steps, seconds = 0, 0.0
    for c in workdir_lib.Workdir(wd).cohorts:
        if cohorts and c.name not in cohorts:
            continue
        with open(os.path.join(c.dir, workdir_lib.SUMMARY)) as f:
            summary = json.load(f)
        steps += summary["replica_steps"]
        seconds += summary["process_time_s"]
    if cohorts:
        res["runs"] = [r for r in res["runs"] if r["cohort"] in cohorts]
        res["configurations"] = results.configurations(res["runs"])
    return {"results": res, "replica_steps": steps, "cohort_seconds": seconds}


def _name(cfg: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in results.hyperparameters(cfg).items())


def main(argv):
    del argv
    times = {}
    args = {"full": [], "halving": [f"--config.train.halving.min_epochs={FLAGS.min_epochs}",
                                    f"--config.train.halving.eta={FLAGS.eta}",
                                    f"--config.train.halving.group={FLAGS.group}"]}
    for name in [] if FLAGS.compare_only else FLAGS.sweeps:
        times[name] = _sweep(name, args[name])
    # A sweep not run by this launch: its wall time from its own file, if it left one.
    for name in args:
        path = os.path.join(FLAGS.workdir, f"{name}.wall_s")
        if name in times:
            with open(path, "w") as f:
                f.write(f"{times[name]:.1f}\n")
        elif os.path.exists(path):
            with open(path) as f:
                times[name] = float(f.read())
    full = _read(os.path.join(FLAGS.workdir, "full"), FLAGS.cohorts)
    halved = _read(os.path.join(FLAGS.workdir, "halving"), FLAGS.cohorts)
    best_full = full["results"]["configurations"][0]
    best_halved = halved["results"]["configurations"][0]
    key = results.config_key

    def members(res, cfg):
        return [r for r in res["runs"] if key(r) == key(results.hyperparameters(cfg))]

    test = compare.paired_images(
        compare.per_case_mean([r.get("case_dice") for r in members(full["results"], best_full)]),
        compare.per_case_mean([r.get("case_dice")
                               for r in members(halved["results"], best_halved)]))
    out = {
        "experiment": FLAGS.experiment, "min_epochs": FLAGS.min_epochs, "eta": FLAGS.eta,
        "group": FLAGS.group, "sweeps_this_launch": [] if FLAGS.compare_only else FLAGS.sweeps,
        "date": time.strftime("%Y-%m-%d"), "device": f"{os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()})", "jax": jax.__version__,
        "wall_s": times or None,
        "replica_steps": {"full": full["replica_steps"], "halving": halved["replica_steps"]},
        "steps_share": halved["replica_steps"] / full["replica_steps"],
        "wall_share": times["halving"] / times["full"] if len(times) == 2 else None,
        "cohort_seconds": {"full": full["cohort_seconds"], "halving": halved["cohort_seconds"]},
        "cohort_seconds_share": halved["cohort_seconds"] / full["cohort_seconds"],
        "cohorts": FLAGS.cohorts or "all",
        "best_full": {"config": _name(best_full), "dice": best_full.get("dice_mean")},
        "best_halving": {"config": _name(best_halved), "dice": best_halved.get("dice_mean")},
        "same_best": key(results.hyperparameters(best_full))
        == key(results.hyperparameters(best_halved)),
        "paired_images": test,
        "pruned_runs": sum(r["status"] == "pruned" for r in halved["results"]["runs"]),
    }
    name = "halving_compare" + ("_" + "_".join(FLAGS.cohorts) if FLAGS.cohorts else "")
    with open(os.path.join(FLAGS.workdir, f"{name}.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    app.run(main)
