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

from jaxseg.outputs import jsonable, write_json

# Axes that repeat a configuration rather than define it.
REPEAT_AXES = ("seed", "data.fold")
LOWER_IS_BETTER = ("loss", "val_loss", "hd95", "train_loss")


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
    rows = []
    for p in plans:
        s = summaries[p.name]
        for r, run_index in enumerate(p.runs):
            rep = s["replicas"][r]
            best = rep.get("best") or {}
            row = {"run": run_index, "cohort": p.name, **runs[run_index],
                   "status": rep["status"], "best_epoch": rep["best_epoch"],
                   "val_loss": best.get("loss"), "dice": best.get("dice")}
            for c, name in enumerate(class_names[1:], start=1):
                per = best.get("dice_per_class")
                row[f"dice_{name}"] = per[c] if per else None
            for key in ("iou", "bf", "hd95", "accuracy", "volume_dice"):
                if key in best:
                    row[key] = best[key]
            row["wall_time_s"] = s["wall_time_s"] / max(len(p.runs), 1)
            rows.append(row)
    rows.sort(key=lambda x: x["run"])
    return rows


def _is_metric(key):
    return key in ("val_loss", "dice", "iou", "bf", "hd95", "accuracy", "volume_dice",
                   "wall_time_s") or key.startswith("dice_")


def configurations(rows: list[dict], sort: str = "dice") -> list[dict]:
    """Aggregates runs that differ only in seed/fold: mean and std of every metric.

    Args:
      rows: from :func:`run_rows`.
      sort: the metric to sort by (descending, except losses and HD95).

    Returns:
      One dict per configuration: its hyperparameters, ``n`` and ``<metric>_mean``/``_std``.
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        key = {k: v for k, v in row.items() if not _is_metric(k) and k not in
               ("run", "cohort", "status", "best_epoch", *REPEAT_AXES)}
        groups.setdefault(json.dumps(key, sort_keys=True, default=str), []).append(row)
    out = []
    for key, members in groups.items():
        agg = {**json.loads(key), "n": len(members),
               "diverged": sum(m["status"] == "diverged" for m in members)}
        for metric in sorted({k for m in members for k in m if _is_metric(k)}):
            vals = np.array([m[metric] for m in members
                             if m.get(metric) is not None and math.isfinite(m[metric])], float)
            agg[f"{metric}_mean"] = float(vals.mean()) if vals.size else None
            agg[f"{metric}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
        out.append(agg)
    sign = 1 if sort in LOWER_IS_BETTER else -1
    key = "val_loss" if sort == "loss" else sort
    out.sort(key=lambda a: (a.get(f"{key}_mean") is None, sign * (a.get(f"{key}_mean") or 0)))
    return out


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(rows: list[dict], configs_: list[dict], title: str = "") -> str:
    """Both tables as Markdown."""
    hyper = [k for k in rows[0] if not _is_metric(k) and k not in ("run", "cohort", "status",
                                                                     "best_epoch")]
    metrics = [k for k in rows[0] if _is_metric(k)]
    lines = [f"# {title or 'Sweep results'}", "", f"{len(rows)} runs, {len(configs_)} "
             "configurations. Metrics on the validation split at each run's best epoch.", ""]
    cfg_hyper = [k for k in hyper if k not in REPEAT_AXES]
    show = [m for m in metrics if m != "wall_time_s"]
    lines += ["## Configurations (mean ± std over seeds/folds)", "",
              "| " + " | ".join(cfg_hyper + ["n"] + show) + " |",
              "|" + "---|" * (len(cfg_hyper) + 1 + len(show))]
    for c in configs_:
        cells = [_fmt(c.get(k)) for k in cfg_hyper] + [str(c["n"])]
        for m in show:
            mean, std = c.get(f"{m}_mean"), c.get(f"{m}_std")
            cells.append("-" if mean is None else f"{mean:.4f} ± {std:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    cols = ["run", "cohort"] + hyper + ["status", "best_epoch"] + metrics
    lines += ["", "## Runs", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k in cols) + " |")
    return "\n".join(lines) + "\n"


def write(workdir: str, rows: list[dict], sort: str = "dice", title: str = "") -> list[dict]:
    """Writes results.csv, results.json and results.md; returns the configuration table."""
    configs_ = configurations(rows, sort)
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: jsonable(r.get(k)) for k in keys})
    write_json(os.path.join(workdir, "results.json"), {"runs": rows, "configurations": configs_})
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(markdown(rows, configs_, title))
    return configs_
