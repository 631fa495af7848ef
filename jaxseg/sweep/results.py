"""Result tables of a sweep: one row per run, and per configuration over seeds/folds.

Written to the sweep's workdir as ``results.csv`` (runs), ``results.json`` (runs and
configurations) and ``results.md`` (both tables, in the shape of the source studies'
tables: hyperparameters, per-class Dice, mean Dice, IoU, BF, HD95, losses).
"""

import csv
import json
import math
import os

import numpy as np

from jaxseg import hparams, models
from jaxseg import workdir as workdir_lib
from jaxseg.engine.evaluate import CASE_DICE
from jaxseg.outputs import is_writer, jsonable, write_json
from jaxseg.sweep import compare

REPEAT_AXES = hparams.REPEAT_AXES
LOWER_IS_BETTER = ("loss", "val_loss", "hd95", "train_loss", "hd95_missed")
# A row's bookkeeping: neither a hyperparameter nor a metric to average.
INFO_KEYS = ("run", "cohort", "status", "best_epoch", "stopped_epoch", "hd95_unit")
# What a configuration's aggregate holds besides its hyperparameters and <metric>_mean/_std:
# its runs, how many diverged or were pruned (and when), and the comparison with the best.
AGGREGATE_KEYS = ("n", "diverged", "pruned", "pruned_epoch", "p_seeds", "p_images",
                  "delta_image", "r_image", "vs_best")
# Best-epoch metrics copied into a row when the evaluation computed them: pooled over
# pixels, per image (``*_image``), and HD95 with its unit and its undefined cases.
ROW_METRICS = ("dice_image", "iou", "bf", "bf_image", "hd95", "hd95_missed",
               "accuracy", "volume_dice")


def run_row(run, cohort: str, overrides: dict, status: str, best_epoch: int,
            best: dict | None, class_names, stopped_epoch: int | None = None) -> dict:
    """The table row of one run: its overrides, status and best-epoch validation metrics.

    Args:
      run: the run's number (or id).
      cohort: its cohort's name.
      overrides: the dotted overrides that define it.
      status: finished | stopped | diverged | pruned | running | interrupted | pending.
      best_epoch: the epoch of its best validation score.
      best: the validation metrics at that epoch (None if never evaluated).
      class_names: names of the classes (background first).
      stopped_epoch: the epoch it stopped early, diverged or was pruned in (None: it did not).

    Returns:
      The row (per-class Dice as ``dice_<class>``; ``case_dice``, each validation case's
      Dice, for the paired tests, is in results.json but not in the tables).
    """
    best = best or {}
    row = {"run": run, "cohort": cohort, **overrides, "status": status,
           "best_epoch": best_epoch, "stopped_epoch": stopped_epoch,
           "val_loss": best.get("loss"), "dice": best.get("dice")}
    per = best.get("dice_per_class")
    for c, name in enumerate(class_names[1:], start=1):
        row[f"dice_{name}"] = per[c] if per else None
    for key in ROW_METRICS:
        if key in best:
            row[key] = best[key]
    if "hd95" in best:
        row["hd95_unit"] = best.get("hd95_unit", "px")
    if best.get(CASE_DICE) is not None:
        row[CASE_DICE] = best[CASE_DICE]
    return row


def swept_values(overrides: dict, swept: list[str], resolved) -> dict:
    """A run's value of every swept field: its own override, else its config's value.

    Args:
      overrides: the run's dotted overrides.
      swept: every field some run of the sweep overrides.
      resolved: the run's full config.

    Returns:
      ``{field: value}`` over ``swept``; None where the config has no such field ("label",
      or the weight of a loss term the run does not use) or the run's network does not read
      it (``model.depth`` of a DeepLabV3 run).
    """
    out = {}
    for key in swept:
        if not models.reads(resolved.model, key):
            out[key] = None
        elif key in overrides:
            out[key] = overrides[key]
        else:
            try:
                out[key] = hparams.get_field(resolved, key)
            except KeyError:
                out[key] = None
    return out


def run_rows(plans, runs: list[dict], summaries: dict, class_names) -> list[dict]:
    """One row per run from the cohorts' summaries.

    Args:
      plans: the cohort plans.
      runs: the sweep's runs (their overrides).
      summaries: ``{cohort name: summary dict}``.
      class_names: names of the classes (background first).

    Returns:
      Rows with the run's overrides, status, best epoch and best-epoch metrics.
    """
    # A run that leaves a swept field at its base value still gets that value in its row
    # (not "-"): e.g. augment.hflip=True for every augmentation setting but "none".
    swept = list(dict.fromkeys(k for o in runs for k in o))
    rows = []
    for p in plans:
        s = summaries[p.name]
        for r, run_index in enumerate(p.runs):
            rep = s["replicas"][r]
            overrides = swept_values(runs[run_index], swept,
                                     hparams.apply_overrides(p.config, p.overrides[r]))
            row = run_row(run_index, p.name, overrides, rep["status"],
                          rep["best_epoch"], rep.get("best"), class_names,
                          rep.get("stopped_epoch"))
            # Replicas train together: a run's time is its share of the cohort's.
            row["wall_time_s"] = s["wall_time_s"] / max(len(p.runs), 1)
            rows.append(row)
    rows.sort(key=lambda x: x["run"])
    return rows


def _is_metric(key):
    return key in ("val_loss", "dice", "wall_time_s", *ROW_METRICS) or key.startswith("dice_")


def _is_hyperparameter(key):
    return not _is_metric(key) and key not in (*INFO_KEYS, CASE_DICE)


def config_key(row: dict) -> str:
    """The configuration a run belongs to: its hyperparameters except seed and fold (JSON)."""
    return hparams.configuration_key({k: v for k, v in row.items() if _is_hyperparameter(k)})


def hyperparameters(aggregate: dict) -> dict:
    """A configuration aggregate's hyperparameters (what :func:`config_key` was made of)."""
    return {k: v for k, v in aggregate.items()
            if k not in AGGREGATE_KEYS and not k.endswith(("_mean", "_std"))}


def _repeat(row: dict) -> str:
    return json.dumps([row.get(k) for k in REPEAT_AXES], default=str)


def configurations(rows: list[dict], sort: str = "dice") -> list[dict]:
    """Aggregates runs that differ only in seed/fold: mean and std of every metric.

    Args:
      rows: from :func:`run_rows`.
      sort: the metric to sort by (descending, except losses and HD95).

    Returns:
      One dict per configuration, best first: its hyperparameters, ``n``, ``diverged``,
      ``pruned`` (runs pruned by successive halving) and ``pruned_epoch``,
      ``<metric>_mean``/``_std`` (``_std`` None for a single value), and the paired
      comparison with the best configuration (:func:`jaxseg.sweep.compare.against_best`).
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(config_key(row), []).append(row)
    out = []
    for key, members in groups.items():
        pruned = [m for m in members if m["status"] == "pruned"]
        agg = {**json.loads(key), "n": len(members),
               "diverged": sum(m["status"] == "diverged" for m in members),
               "pruned": len(pruned),
               "pruned_epoch": max((m.get("stopped_epoch") or 0 for m in pruned), default=None)}
        for metric in sorted({k for m in members for k in m if _is_metric(k)}):
            vals = np.array([m[metric] for m in members
                             if m.get(metric) is not None and math.isfinite(m[metric])], float)
            agg[f"{metric}_mean"] = float(vals.mean()) if vals.size else None
            # One value has no spread: None, shown as the bare mean (not "± 0.0000").
            agg[f"{metric}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else None
        out.append(agg)
    sign = 1 if sort in LOWER_IS_BETTER else -1
    key = "val_loss" if sort == "loss" else sort
    order = sorted(range(len(out)), key=lambda i: (out[i].get(f"{key}_mean") is None,
                                                   sign * (out[i].get(f"{key}_mean") or 0)))
    members = list(groups.values())
    tests = compare.against_best([members[i] for i in order], key, _repeat)
    return [{**out[i], **t} for i, t in zip(order, tests, strict=True)]


def _columns(rows: list[dict]) -> list[str]:
    """Every row's keys, in first-seen order (rows may differ: ``jaxseg report``'s do)."""
    return list(dict.fromkeys(k for r in rows for k in r))


def fixed_fields(rows: list[dict]) -> dict:
    """The hyperparameter columns that hold one value in every row (with that value).

    The tables leave them out (they tell no runs apart: a loss weight every run of a grid
    shares, or every field of a single run) and say them once above the tables;
    ``results.csv`` and ``results.json`` keep every column.
    """
    out = {}
    for k in _columns(rows):
        if _is_hyperparameter(k) and k != "label":
            values = {json.dumps(r.get(k), default=str) for r in rows}
            if len(values) == 1:
                out[k] = rows[0].get(k)
    return out


def fixed_line(rows: list[dict]) -> str:
    """``Fixed in every run: a = 1, b = 2.`` (empty when nothing is fixed)."""
    fixed = fixed_fields(rows)
    return ("Fixed in every run: " + ", ".join(f"{k} = {fmt(v)}" for k, v in fixed.items())
            + ".") if fixed else ""


def fmt(v) -> str:
    """A table cell: ``-`` for a missing value, 4 significant digits for a float."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def tables(rows: list[dict], configs_: list[dict]):
    """Both tables as header + cell strings: ``((cfg_header, cfg_cells), (run_header, run_cells))``.

    Args:
      rows: from :func:`run_rows` (or :func:`run_row`).
      configs_: from :func:`configurations`.
    """
    keys = _columns(rows)
    fixed = fixed_fields(rows)
    hyper = [k for k in keys if _is_hyperparameter(k) and k not in fixed]
    metrics = [k for k in keys if _is_metric(k)]
    units = {r["hd95_unit"] for r in rows if r.get("hd95_unit")}
    # HD95's column says what its distances are in (mm where the spacing is known).
    label = {"hd95": f"hd95 ({'/'.join(sorted(units))})"} if units else {}
    cfg_hyper = [k for k in hyper if k not in REPEAT_AXES]
    show = [m for m in metrics if m != "wall_time_s"]
    pruned = any(c.get("pruned") for c in configs_)
    paired = len(configs_) > 1
    cfg_cells = []
    for c in configs_:
        cells = [fmt(c.get(k)) for k in cfg_hyper] + [str(c["n"])]
        if pruned:
            cells.append(f"epoch {c['pruned_epoch']}" if c.get("pruned") else "-")
        for m in show:
            mean, std = c.get(f"{m}_mean"), c.get(f"{m}_std")
            cells.append("-" if mean is None else f"{mean:.4f}" if std is None
                         else f"{mean:.4f} ± {std:.4f}")
        if paired:
            cells += [VERDICT.get(c.get("vs_best"), "-")] + [
                "-" if c.get(k) is None else f"{c[k]:.3g}" if k.startswith("p_")
                else f"{c[k]:+.4f}" if k == "delta_image" else f"{c[k]:+.2f}"
                for k in ("p_seeds", "p_images", "delta_image", "r_image")]
        cfg_cells.append(cells)
    cols = ["run", "cohort"] + hyper + ["status", "best_epoch", "stopped_epoch"] + metrics
    run_cells = [[fmt(r.get(k)) for k in cols] for r in rows]
    cfg_header = (cfg_hyper + ["n"] + (["pruned at"] if pruned else [])
                  + [label.get(m, m) for m in show]
                  + (["vs best", "p seeds (Holm)", "p images (Holm)", "Δ dice/image", "r"]
                     if paired else []))
    return (cfg_header, cfg_cells), ([label.get(c, c) for c in cols], run_cells)


# The "vs best" cell: whether a configuration can be told from the best at compare.ALPHA.
VERDICT = {"best": "best", "tied": "≈ best", "worse": "worse", "better": "better"}


def markdown_table(header: list[str], cells: list[list[str]]) -> list[str]:
    """A Markdown table's lines."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in cells]


def markdown(rows: list[dict], configs_: list[dict], title: str = "") -> str:
    """Both tables as Markdown."""
    (cfg_header, cfg_cells), (run_header, run_cells) = tables(rows, configs_)
    lines = [f"# {title or 'Sweep results'}", "", f"{len(rows)} runs, {len(configs_)} "
             "configurations. Metrics on the validation split at each run's best epoch; "
             "wall_time_s is a run's share of its cohort's training time (the cohort's "
             "time over its runs: replicas train together). dice, iou and bf are pooled over "
             "every pixel of the split, the *_image columns averaged over images; hd95 is "
             "medpy's, per image or volume, with hd95_missed the cases where a class is in "
             "only one of the two masks (jaxseg's docs/metrics.md). \"vs best\": ≈ best where "
             "no paired test tells the configuration from the best one at α = 0.05 after "
             "Holm's correction over the configurations (p seeds: paired t-test of the sort "
             "metric over shared seeds/folds; p images: Wilcoxon signed-rank of per-image "
             "Dice averaged over seeds, with the mean difference Δ and the rank-biserial "
             "r as its effect size; docs/statistics.md).", ""]
    if fixed_line(rows):
        lines += [fixed_line(rows), ""]
    lines += ["## Configurations (mean ± std over seeds/folds)", ""]
    lines += markdown_table(cfg_header, cfg_cells)
    lines += ["", "## Runs", ""] + markdown_table(run_header, run_cells)
    return "\n".join(lines) + "\n"


def write(workdir: str, rows: list[dict], sort: str = "dice", title: str = "") -> list[dict]:
    """Writes results.csv, results.json and results.md; returns the configuration table."""
    configs_ = configurations(rows, sort)
    if not is_writer():
        return configs_
    keys = [k for k in _columns(rows) if k != CASE_DICE]  # per-case values: results.json
    with open(os.path.join(workdir, f"{workdir_lib.RESULTS}.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: jsonable(r.get(k)) for k in keys})
    write_json(os.path.join(workdir, f"{workdir_lib.RESULTS}.json"),
               {"runs": rows, "configurations": configs_})
    with open(os.path.join(workdir, f"{workdir_lib.RESULTS}.md"), "w") as f:
        f.write(markdown(rows, configs_, title))
    return configs_
