"""``jaxseg report``: a self-contained folder with the tables and pictures of a workdir.

The folder holds ``report.md`` and ``report.html`` (which reference only the PNG files beside
them, so the folder can be moved, zipped or opened from disk) and these matplotlib figures:

* ``curves.png``: training loss, validation loss and validation Dice per epoch for the best
  configurations (mean over seeds/folds, the band spans their min..max);
* ``per_class.png``: validation Dice per class and configuration, bars with the standard
  deviation over seeds/folds;
* ``panels_best.png`` / ``panels_worst.png``: input / ground truth / prediction / difference
  map for the same validation images, from the best and the worst configuration (the
  best-scoring replica of each, its best weights).

It works on a train or a sweep workdir, finished or not (replicas not yet evaluated are
left out, and the report says so).
"""

import html
import json
import math
import os

import matplotlib
import numpy as np
from absl import logging

# Figures are built as plain matplotlib Figures (no pyplot): they only go to files, so no
# GUI backend is chosen or needed (CI machines have no display), and nothing global is set.
from matplotlib.figure import Figure

from jaxseg import drawing, model_io, outputs
from jaxseg import workdir as workdir_lib
from jaxseg.data import datasets
from jaxseg.errors import JaxsegError
from jaxseg.sweep import results


def _subplots(*grid, figsize, **kw):
    """A new figure and its axes (``Figure.subplots``), not registered with pyplot."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kw)


MAX_CURVES = 8  # configurations drawn in curves.png (the best ones)
MAX_BARS = 12  # configurations in per_class.png


def _label(config: dict, keys: list[str]) -> str:
    if not keys:
        return "run"
    return ", ".join(results.fmt(config.get(k)) if k == "label" else
                     f"{k.rsplit('.', 1)[-1]}={results.fmt(config.get(k))}" for k in keys)


def _names(configs_: list[dict], keys: list[str]) -> list[str]:
    """Each configuration's name: its label and only the fields that vary under that label.

    dropout_stages labels runs by stage: "encoder, encoder=0.1" rather than "encoder,
    encoder=0.1, bottleneck=0, decoder=0".
    """
    if "label" not in keys:
        return [_label(c, keys) for c in configs_]
    out = []
    for c in configs_:
        group = [d for d in configs_ if d.get("label") == c.get("label")]
        own = [k for k in keys[1:] if len({json.dumps(d.get(k), default=str)
                                           for d in group}) > 1]
        out.append(_label(c, ["label"] + own))
    return out


def _varying(configs_: list[dict]) -> list[str]:
    """The hyperparameters that differ between configurations (what names them).

    An experiment's ``label`` names its configurations in the experiment author's words:
    where one varies, the fields it determines (the same value under each label, such as
    the loss weights behind "ce+dice") are left out of the names, which stay short enough
    for a figure's legend and axis.
    """
    def value(c, k):
        return json.dumps(c.get(k), default=str)

    keys = list(results.hyperparameters(configs_[0]))
    keys = [k for k in keys if len({value(c, k) for c in configs_}) > 1]
    # The label first: it wins ties, and is never left out itself.
    keys = sorted(keys, key=lambda k: k != "label")

    # A field another one determines names nothing new (the loss weights behind a label,
    # AdamW's own weight decay in an optimizer x learning-rate grid): left out, so names
    # stay short and a grid keeps its two axes. Of two fields that determine each other
    # the first stays.
    def count(k):
        return len({value(c, k) for c in configs_})

    def determines(j, k):
        return len({(value(c, j), value(c, k)) for c in configs_}) == count(j)

    return [k for i, k in enumerate(keys)
            if k == "label" or not any(determines(j, k) and (count(j) > count(k) or (
                count(j) == count(k) and keys.index(j) < i)) for j in keys if j != k)]


def _histories(wd: workdir_lib.Workdir) -> dict:
    """``{replica id: [history records]}`` from every cohort's history.jsonl."""
    out = {}
    for c in wd.cohorts:
        records = outputs.read_jsonl(os.path.join(c.dir, workdir_lib.HISTORY))
        for rep in c.replicas:
            out[rep.id] = [r for r in records if r["replica"] == rep.index]
    return out


def _curves(path: str, groups: list[tuple[str, list]], histories: dict) -> None:
    fig, axes = _subplots(1, 3, figsize=(15, 4.2 + 0.3 * (-(-len(groups) // 4))))
    colours = matplotlib.colormaps["tab10"](np.linspace(0, 1, 10))
    for (label, members), colour in zip(groups, colours, strict=False):
        for ax, key in zip(axes, ("train_loss", "loss", "dice"), strict=True):
            series = [{r["epoch"]: r.get(key) for r in histories[m.id]} for m in members]
            epochs = sorted({e for s in series for e in s})
            if not epochs:
                continue
            vals = np.array([[s.get(e) if s.get(e) is not None else np.nan for e in epochs]
                             for s in series], float)
            mean = np.nanmean(vals, 0) if np.isfinite(vals).any() else vals[0]
            ax.plot(epochs, mean, color=colour, label=label, lw=1.5)
            if len(series) > 1:
                ax.fill_between(epochs, np.nanmin(vals, 0), np.nanmax(vals, 0), color=colour,
                                alpha=0.15, lw=0)
    for ax, title in zip(axes, ("training loss", "validation loss", "validation Dice "
                                "(mean foreground)"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    # One legend below the three panels: inside one of them it hides the curves.
    handles, names = axes[0].get_legend_handles_labels()
    rows = -(-len(names) // 4)
    fig.tight_layout(rect=(0, 0.07 * rows, 1, 1))
    if names:
        fig.legend(handles, names, loc="lower center", ncols=min(4, len(names)), fontsize=8,
                   frameon=False)
    fig.savefig(path, dpi=110)


def _bars(path: str, configs_: list[dict], labels: list[str], class_names: list[str]) -> None:
    names, colours = class_names[1:], drawing.class_colours(class_names)
    fig, ax = _subplots(figsize=(max(6.0, 1.1 * len(configs_) + 2), 4.2))
    width = 0.8 / len(names)
    x = np.arange(len(configs_))
    for i, name in enumerate(names):
        mean = [c.get(f"dice_{name}_mean") or 0.0 for c in configs_]
        # A single run has no spread: no error bar rather than one of length zero.
        std = [c.get(f"dice_{name}_std") if c.get(f"dice_{name}_std") is not None else np.nan
               for c in configs_]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, mean, width, yerr=std, capsize=2,
               label=name, color=colours[i + 1] / 255)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("validation Dice")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=len(names), loc="lower center", bbox_to_anchor=(0.5, 1.0),
              frameon=False)  # above the bars, not over them
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def grid_axes(configs_: list[dict], keys: list[str]) -> tuple[str, str] | None:
    """The two axes (rows, columns) of a two-axis grid, or None.

    A study whose configurations differ in exactly two hyperparameters (weight decay x data
    fraction, optimizer x learning rate) is read best as the source studies printed it: a
    matrix. A named axis (optimizer, loss label) gives the rows, a numeric one the columns;
    the configurations must fill at least half of the matrix.
    """
    if len(keys) != 2:
        return None

    def kind(k):
        values = {type(c.get(k)) for c in configs_}
        if values <= {int, float}:
            return "number"
        return "name" if values == {str} else None

    kinds = [kind(k) for k in keys]
    if None in kinds:
        return None
    sizes = [len({c.get(k) for c in configs_}) for k in keys]
    if min(sizes) < 2 or len(configs_) < 0.5 * sizes[0] * sizes[1]:
        return None
    return (keys[1], keys[0]) if kinds == ["number", "name"] else (keys[0], keys[1])


def grid_matrix(configs_: list[dict], axes: tuple[str, str], metric: str):
    """The mean ``metric`` of a two-axis grid as a matrix.

    Returns:
      ``(row values, column values, matrix)``, values ascending (names alphabetical); NaN
      where a cell has no run.
    """
    rows_key, cols_key = axes
    rows = sorted({c[rows_key] for c in configs_})
    cols = sorted({c[cols_key] for c in configs_})
    grid = np.full((len(rows), len(cols)), np.nan)
    for c in configs_:
        value = c.get(f"{metric}_mean")
        if value is not None:
            grid[rows.index(c[rows_key]), cols.index(c[cols_key])] = value
    return rows, cols, grid


def _heatmap(path: str, configs_: list[dict], axes: tuple[str, str], metric: str) -> None:
    rows_key, cols_key = axes
    rows, cols, grid = grid_matrix(configs_, axes, metric)
    fig, ax = _subplots(figsize=(1.1 * len(cols) + 2.5, 0.55 * len(rows) + 1.8))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    finite = grid[np.isfinite(grid)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for i in range(len(rows)):
        for j in range(len(cols)):
            if np.isfinite(grid[i, j]):  # dark text on the bright end of viridis
                ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=8,
                        color="black" if grid[i, j] > middle else "white")
    ax.set_xticks(range(len(cols)), [results.fmt(v) for v in cols])
    ax.set_yticks(range(len(rows)), [results.fmt(v) for v in rows])
    ax.set_xlabel(cols_key)
    ax.set_ylabel(rows_key)
    ax.set_title(f"validation {metric} (mean over seeds/folds)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def difference_map(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB picture of the errors: missed foreground blue, false foreground red, wrong class yellow.

    Args:
      image: ``(H, W)`` float in [0, 1] (shown dimmed underneath).
      truth: ``(H, W)`` true labels.
      pred: ``(H, W)`` predicted labels.

    Returns:
      uint8 ``(H, W, 3)``.
    """
    out = np.repeat((np.clip(image, 0, 1) * 110)[..., None], 3, -1).astype(np.uint8)
    out[(truth > 0) & (pred == 0)] = (40, 90, 255)
    out[(truth == 0) & (pred > 0)] = (255, 50, 50)
    out[(truth > 0) & (pred > 0) & (truth != pred)] = (255, 220, 0)
    return out


def _panels(path: str, images, truth, pred, title: str, class_names) -> None:
    n, colours = len(images), drawing.class_colours(class_names)
    fig, axes = _subplots(n, 4, figsize=(9, 2.3 * n + 0.5), squeeze=False)
    for i in range(n):
        pics = [images[i], drawing.overlay(images[i], truth[i], colours=colours),
                drawing.overlay(images[i], pred[i], colours=colours),
                difference_map(images[i], truth[i], pred[i])]
        for j, (ax, pic) in enumerate(zip(axes[i], pics, strict=True)):
            ax.imshow(pic, cmap="gray" if pic.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(("input", "ground truth", "prediction",
                              "difference map")[j], fontsize=8)
    fig.suptitle(title + "\ndifference map: blue = missed foreground, red = false "
                 "foreground, yellow = wrong class", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _choose_images(labels: np.ndarray, count: int) -> np.ndarray:
    """``count`` validation images spread over the split, preferring ones with foreground."""
    with_fg = np.flatnonzero(labels.reshape(len(labels), -1).max(1) > 0)
    pool = with_fg if len(with_fg) >= count else np.arange(len(labels))
    return pool[np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int)]


def _representative(members, sort: str):
    """The member replica with the best score (its weights make the panels)."""
    key = "loss" if sort in ("loss", "val_loss") else sort
    sign = 1 if sort in results.LOWER_IS_BETTER else -1
    scored = [m for m in members if m.best and m.best.get(key) is not None
              and math.isfinite(m.best[key])]
    return min(scored, key=lambda m: sign * m.best[key]) if scored else members[0]


def build(workdir: str, out: str | None = None, panels: int = 4, sort: str | None = None) -> str:
    """Writes the report folder of a workdir.

    Args:
      workdir: a train or sweep workdir.
      out: the report folder (default ``<workdir>/report``).
      panels: validation images per image panel.
      sort: the metric that ranks configurations (default: the sweep's ``sweep.sort``).

    Returns:
      The report folder's absolute path.
    """
    wd = workdir_lib.Workdir(workdir)
    started = [c for c in wd.cohorts if c.state != "pending"]
    if not started:
        raise JaxsegError(f"workdir {wd.path} has no trained cohort yet; nothing to report")
    base = workdir_lib.cohort_config(started[0].dir)
    class_names = list(base.data.class_names)
    sort = sort or (base.sweep.sort if "sweep" in base else "dice")
    out = os.path.abspath(out or os.path.join(wd.path, workdir_lib.REPORT))
    os.makedirs(out, exist_ok=True)

    evaluated = [r for r in wd.replicas if r.best]
    if not evaluated:
        raise JaxsegError(f"workdir {wd.path}: no replica has been evaluated yet")
    by_row = {}
    # A run that leaves a swept field at its base value is named by that value, as in
    # results.md (dropout_stages' "bottleneck" runs have encoder rate 0, not "-").
    swept = list(dict.fromkeys(k for r in evaluated for k in r.overrides))
    for r in evaluated:
        values = results.swept_values(r.overrides, swept, workdir_lib.replica_config(r))
        row = results.run_row(r.run if r.run is not None else r.id, r.cohort, values,
                              r.status, r.best_epoch, r.best, class_names, r.stopped_epoch)
        by_row.setdefault(results.config_key(row), []).append((row, r))
    rows = [row for members in by_row.values() for row, _ in members]
    configs_ = results.configurations(rows, sort)
    varying = _varying(configs_)
    labels = _names(configs_, varying)
    members = [[r for _, r in by_row[results.config_key(results.hyperparameters(c))]]
               for c in configs_]

    histories = _histories(wd)
    _curves(os.path.join(out, "curves.png"),
            list(zip(labels, members, strict=True))[:MAX_CURVES], histories)
    _bars(os.path.join(out, "per_class.png"), configs_[:MAX_BARS], labels[:MAX_BARS],
          class_names)
    figures = [("curves.png", "Training and validation curves" + (
        f" of the {MAX_CURVES} best configurations" if len(configs_) > MAX_CURVES else "")
        + " (mean over seeds/folds; band: min..max)."),
        ("per_class.png", "Validation Dice per class at each run's best epoch, mean ± std "
         "over seeds/folds" + (f" (the {MAX_BARS} best configurations)."
                               if len(configs_) > MAX_BARS else "."))]
    axes = grid_axes(configs_, varying)
    if axes:
        _heatmap(os.path.join(out, "grid.png"), configs_, axes, sort)
        figures.insert(0, ("grid.png", f"Validation {sort} over the grid ({axes[0]} x "
                           f"{axes[1]}), mean over seeds/folds at each run's best epoch."))
    notes = []
    try:
        figures += _image_panels(out, configs_, labels, members, sort, panels)
    except JaxsegError as e:  # e.g. the data folder is not on this machine
        notes.append(f"Image panels skipped: {e}")
        logging.warning("report: image panels skipped: %s", e)

    statuses = {}
    for r in wd.replicas:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    (cfg_header, cfg_cells), (run_header, run_cells) = results.tables(rows, configs_)
    title = os.path.basename(wd.path.rstrip("/"))
    intro = (f"{wd.kind} workdir `{wd.path}`: {len(wd.replicas)} runs in {len(wd.cohorts)} "
             f"cohort(s); status: " + ", ".join(f"{n} {s}" for s, n in sorted(
                 statuses.items())) + f". Configurations are ranked by validation {sort}; "
             "metrics are those of each run's best epoch on the validation split.")
    if len(evaluated) < len(wd.replicas):
        notes.append(f"{len(wd.replicas) - len(evaluated)} run(s) not evaluated yet are not "
                     "in the tables.")
    if results.fixed_line(rows):  # fields no run differs in: said once, not as columns
        notes.insert(0, results.fixed_line(rows))
    blocks = [("h1", f"jaxseg report: {title}"), ("p", intro)] + [("p", n) for n in notes]
    blocks += [("h2", "Configurations (mean ± std over seeds/folds)"),
               ("table", cfg_header, cfg_cells), ("h2", "Figures")]
    blocks += [("img", f, cap) for f, cap in figures]
    blocks += [("h2", "Runs"), ("table", run_header, run_cells)]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(_markdown(blocks))
    with open(os.path.join(out, "report.html"), "w") as f:
        f.write(_html(blocks, title))
    return out


def _image_panels(out, configs_, labels, members, sort, count) -> list[tuple[str, str]]:
    """Panels of the best and the worst configuration on the same validation images."""
    picks = [("panels_best.png", 0, "best")]
    if len(configs_) > 1:
        picks.append(("panels_worst.png", len(configs_) - 1, "worst"))
    figures, data, chosen = [], None, None
    for fname, k, which in picks:
        rep = _representative(members[k], sort)
        model = model_io.from_replica(rep)
        if data is None:  # every cohort of a sweep shares the dataset's validation split
            data = datasets.load(model.config.data).val
            chosen = _choose_images(data.labels, count)
        images = data.images[chosen, ..., 0]
        pred = model.segment(data.images[chosen])
        ids = ", ".join(data.ids[i] for i in chosen)
        _panels(os.path.join(out, fname), images, data.labels[chosen], pred,
                f"{which} configuration: {labels[k]} (run {rep.id}, epoch {rep.best_epoch})",
                list(model.config.data.class_names))
        figures.append((fname, f"The {which} configuration ({labels[k]}), replica {rep.id} at "
                        f"its best epoch {rep.best_epoch}, on validation images {ids}."))
    return figures


def _markdown(blocks) -> str:
    lines = []
    for b in blocks:
        if b[0] == "h1":
            lines += [f"# {b[1]}", ""]
        elif b[0] == "h2":
            lines += [f"## {b[1]}", ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "table":
            lines += results.markdown_table(b[1], b[2]) + [""]
        elif b[0] == "img":
            lines += [f"![{b[2]}]({b[1]})", "", f"*{b[2]}*", ""]
    return "\n".join(lines)


def _html(blocks, title: str) -> str:
    esc = html.escape
    body = []
    for b in blocks:
        if b[0] in ("h1", "h2"):
            body.append(f"<{b[0]}>{esc(b[1])}</{b[0]}>")
        elif b[0] == "p":
            body.append(f"<p>{esc(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>"
                           for r in b[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif b[0] == "img":
            body.append(f'<figure><img src="{esc(b[1])}" alt="{esc(b[2])}">'
                        f"<figcaption>{esc(b[2])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;font-size:13px;margin-bottom:1.5em}"
             "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "th{background:#f2f2f2}img{max-width:100%}figcaption{font-size:13px;color:#444}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{esc(title)}"
            f"</title><style>{style}</style></head><body>\n" + "\n".join(body)
            + "\n</body></html>\n")
