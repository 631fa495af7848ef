"""``jaxseg sweep``: every cohort of a grid in one process, resumable, tabulated at the end.

Each cohort trains in ``<workdir>/cohorts/<name>/`` through the one training engine
(:func:`jaxseg.train.train_and_evaluate`), so an interrupted cohort resumes from its last
checkpoint and a finished one (its ``summary.json`` marked complete) is not trained
again. ``<workdir>/sweep.json`` records the grid: running a changed sweep against the
same workdir stops with a message instead of mixing results.
"""

import os
import time

from absl import logging

from jaxseg import configs, outputs, train
from jaxseg import workdir as workdir_lib
from jaxseg.errors import JaxsegError
from jaxseg.sweep import grid_halving, results
from jaxseg.sweep import plan as plan_lib


def run_sweep(config, runs: list[dict], workdir: str, dry_run: bool = False,
              title: str = "", calibrate: bool = False,
              only: list[str] | None = None) -> list[dict] | None:
    """Plans and trains every cohort of a grid, then writes the result tables.

    Args:
      config: the experiment's base config.
      runs: one dict of dotted overrides per run.
      workdir: the sweep's folder.
      dry_run: only print the plan.
      title: the title of results.md.
      calibrate: time one training step per architecture here for the plan's estimates.
      only: train only these cohorts (``c000``, ...), e.g. to share a grid between
        machines or sessions over one workdir; the tables are written by the launch that
        finds every cohort finished.

    Returns:
      The configuration table (None for a dry run, or while cohorts are left to train).
    """
    plans = plan_lib.plan(config, runs)  # resolves the config's classes first
    names = [p.name for p in plans]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise JaxsegError(f"--cohorts names {', '.join(unknown)}, not in this plan; its "
                          f"cohorts are {', '.join(names)} (see --dry_run)")
    timings = None
    if calibrate:
        from jaxseg import bench

        logging.info("timing one training step per architecture of the plan (--calibrate)")
        timings = bench.calibrate(plans)
    text = plan_lib.describe(plans, len(runs), timings)
    print(text)
    if dry_run:
        return None
    os.makedirs(workdir, exist_ok=True)
    workdir_lib.guard(workdir, workdir_lib.SWEEP,
                      {"config": configs.identity(config), "runs": runs}, "sweep")
    # Which runs each cohort trains, for `jaxseg inspect` and `report` (run ids).
    outputs.write_json(os.path.join(workdir, workdir_lib.PLAN), {"cohorts": [
        {"name": p.name, "runs": list(p.runs)} for p in plans]})
    selected = set(only or names)
    grid = _grid_halving(plans)
    if grid and selected != set(names):
        raise JaxsegError("train.halving.group=grid ranks every cohort of the grid together "
                          "at each rung, so one launch trains them all; run without "
                          "--cohorts, or use train.halving.group=cohort")
    # Runs this launch trains: its selected cohorts that have not finished (for the ETA).
    todo = sum(len(p.runs) for p in plans
               if p.name in selected
               and workdir_lib.completed(workdir_lib.cohort_path(workdir, p.name)) is None)
    summaries, t0, trained_runs, done_runs = {}, time.time(), 0, 0
    if grid:  # every unfinished cohort at once, paused at each rung
        left = [p for p in plans if workdir_lib.completed(
            workdir_lib.cohort_path(workdir, p.name)) is None]
        summaries = grid_halving.train_cohorts(
            left, runs, workdir, {p.name: f"[{p.name} {p.index + 1}/{len(plans)}] "
                                  for p in left})
    for k, p in enumerate(plans if not grid else ()):
        cdir = workdir_lib.cohort_path(workdir, p.name)
        summary = workdir_lib.completed(cdir)
        if summary is not None:
            logging.info("[%s %d/%d] already finished; skipped", p.name, k + 1, len(plans))
        elif p.name not in selected:
            logging.info("[%s %d/%d] not in --cohorts; left to another launch", p.name, k + 1,
                         len(plans))
            continue
        else:
            summary = train.train_and_evaluate(p.config, cdir, p.overrides,
                                               label=f"[{p.name} {k + 1}/{len(plans)}] ")
            trained_runs += len(p.runs)
        summaries[p.name] = summary
        done_runs += len(p.runs)
        elapsed = time.time() - t0
        eta = elapsed / trained_runs * (todo - trained_runs) if trained_runs else float("nan")
        logging.info("grid: cohorts %d/%d, runs %d/%d done | %s elapsed | ETA %s", k + 1,
                     len(plans), done_runs, len(runs), outputs.format_seconds(elapsed),
                     outputs.format_seconds(eta) if trained_runs else "-")
    # Another launch sharing the workdir may have finished a cohort meanwhile.
    for p in plans:
        summaries.setdefault(p.name, workdir_lib.completed(workdir_lib.cohort_path(workdir,
                                                                                   p.name)))
    left = [n for n in names if summaries[n] is None]
    if left:
        print(f"jaxseg: {len(plans) - len(left)} of {len(plans)} cohorts finished; left: "
              f"{', '.join(left)}. Run them (--cohorts={','.join(left)}, or the command "
              "without --cohorts); the tables are written when every cohort has finished")
        return None
    rows = results.run_rows(plans, runs, summaries, list(config.data.class_names))
    configs_ = results.write(workdir, rows, config.sweep.sort, title)
    steps = sum(s.get("replica_steps") or 0 for s in summaries.values())
    pruned = sum(r["status"] == "pruned" for r in rows)
    print(f"jaxseg: {len(runs)} runs in {len(plans)} cohort(s), {steps} replica-steps"
          + (f" ({pruned} runs pruned by successive halving)" if pruned else "")
          + f"; tables in {workdir}/results.md")
    return configs_


def _grid_halving(plans) -> bool:
    """Whether the sweep's successive halving ranks the whole grid (``group=grid``)."""
    return any(int(p.config.train.halving.min_epochs) > 0
               and p.config.train.halving.group == "grid" for p in plans)
