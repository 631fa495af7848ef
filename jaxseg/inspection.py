"""``jaxseg inspect``: what a workdir holds, replica by replica, and one replica in depth.

The workdir overview lists every cohort (its state and checkpoint steps) and every replica
(its hyperparameters, status, epochs done, best epoch and best validation metrics). The
replica view adds the full resolved config, clu's parameter overview with the L2 norm of
each layer, and the optimizer and schedule state of the newest checkpoint (the learning
rate it last used, the reduce-on-plateau scale, the step count).
"""

import json
import os

import jax
import numpy as np
from clu import parameter_overview

from jaxseg import checkpoint, optim
from jaxseg import workdir as workdir_lib


def _fmt(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.{digits}f}"
    return str(v)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def describe_workdir(wd: workdir_lib.Workdir) -> str:
    """The overview of a workdir: cohorts, then one line per replica.

    Args:
      wd: the workdir.

    Returns:
      Text for the terminal.
    """
    lines = [f"{wd.kind} workdir {wd.path}"]
    if wd.kind == "sweep":
        lines.append(f"{len(wd.runs)} runs in {len(wd.cohorts)} cohort(s)")
    for c in wd.cohorts:
        name = c.name or "cohort"
        lines.append(f"  {name}: {c.state}, {len(c.replicas)} replica(s), checkpoint steps "
                     f"{c.steps or '-'}")
    keys = []
    for r in wd.replicas:
        keys += [k for k in r.overrides if k not in keys]
    # The columns that tell replicas apart; a field every replica shares is said once.
    fixed = {k: wd.replicas[0].overrides.get(k) for k in keys
             if len({json.dumps(r.overrides.get(k)) for r in wd.replicas}) == 1}
    keys = [k for k in keys if k not in fixed]
    if fixed:
        lines.append("fixed in every replica: " + ", ".join(f"{k}={_fmt(v)}"
                                                           for k, v in fixed.items()))
    header = ["id"] + (["cohort"] if wd.kind == "sweep" else []) + keys + [
        "status", "epoch", "best_epoch", "dice", "iou", "bf", "hd95", "val_loss"]
    rows = []
    for r in wd.replicas:
        best = r.best or {}
        rows.append([r.id] + ([r.cohort] if wd.kind == "sweep" else [])
                    + [_fmt(r.overrides.get(k)) for k in keys]
                    + [_status(r), f"{r.epoch}/{r.epochs}" if r.epochs else "-",
                       str(r.best_epoch or "-")]
                    + [_fmt(best.get(m)) for m in ("dice", "iou", "bf", "hd95", "loss")])
    lines += ["", _table(header, rows)]
    return "\n".join(lines)


def _status(r: workdir_lib.Replica) -> str:
    """``stopped@11``, ``pruned@6``, ``diverged@3``: the status and the epoch it froze in."""
    return r.status + (f"@{r.stopped_epoch}" if r.stopped_epoch else "")


def _layer_norms(params) -> str:
    flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_leaves_with_path(params)}
    modules: dict[str, list[np.ndarray]] = {}
    for name, v in flat.items():
        modules.setdefault(name.rsplit("/", 1)[0], []).append(v)
    rows = [[m, str(sum(v.size for v in vs)),
             f"{np.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in vs)):.4f}"]
            for m, vs in modules.items()]
    return _table(["module", "parameters", "L2 norm"], rows)


def describe_replica(wd: workdir_lib.Workdir, rep: workdir_lib.Replica,
                     which: str = "best") -> str:
    """One replica in depth: config, parameters, optimizer and schedule state.

    Args:
      wd: its workdir.
      rep: the replica.
      which: ``best`` or ``last`` weights for the parameter overview.

    Returns:
      Text for the terminal.
    """
    config = workdir_lib.replica_config(rep)
    lines = [f"replica {rep.id} of {wd.path}" + (f" (cohort {rep.cohort}, index {rep.index})"
                                                 if rep.cohort else ""),
             f"status {_status(rep)}, epoch {rep.epoch}/{rep.epochs}, best epoch "
             f"{rep.best_epoch or '-'}", f"overrides: {json.dumps(rep.overrides)}"]
    if rep.best:
        per = rep.best.get("dice_per_class") or []
        names = list(config.data.class_names)[1:]
        lines.append("best validation: Dice " + _fmt(rep.best.get("dice")) + " ("
                     + ", ".join(f"{n} {_fmt(d)}" for n, d in zip(names, per[1:], strict=False))
                     + f"), per image {_fmt(rep.best.get('dice_image'))}; IoU "
                     f"{_fmt(rep.best.get('iou'))}, BF {_fmt(rep.best.get('bf'))}, HD95 "
                     f"{_fmt(rep.best.get('hd95'))} {rep.best.get('hd95_unit', 'px')}, loss "
                     f"{_fmt(rep.best.get('loss'))}")
    steps = checkpoint.CohortCheckpoints.steps_in(
        os.path.join(rep.cohort_dir, workdir_lib.CHECKPOINTS))
    lines.append(f"checkpoint steps (epochs): {steps or 'none yet'}")
    if steps:
        variables, state, track, step = workdir_lib.restore_replica(rep, which)
        hp = state["opt_state"].get("hyperparams", {})
        scale = float(np.asarray(state["plateau"]["scale"]))
        epoch = track.epoch
        lr_last = float(np.asarray(hp.get("learning_rate", np.nan)))
        # What the next epoch will use: base x schedule x plateau scale, as the engine sets it.
        lr_next = ("- (done)" if epoch >= rep.epochs else _fmt(
            float(config.optim.learning_rate)
            * optim.schedule_factor(config.optim, epoch,
                                    int(config.train.schedule_epochs) or rep.epochs) * scale))
        lines += ["", f"optimizer and schedule (checkpoint of epoch {step}):",
                  f"  optimizer {config.optim.name}, schedule {config.optim.schedule}",
                  f"  learning rate used in epoch {epoch}: {_fmt(lr_last)}; "
                  f"next epoch: {lr_next}",
                  f"  reduce-on-plateau scale {_fmt(scale)}, optimizer steps "
                  f"{int(np.asarray(state['opt_state'].get('count', 0)))}",
                  "  injected: " + ", ".join(f"{k} {_fmt(float(np.asarray(v)))}"
                                             for k, v in hp.items()),
                  "", f"parameters ({which} weights):",
                  parameter_overview.get_parameter_overview(variables["params"],
                                                            include_stats=True),
                  "", _layer_norms(variables["params"])]
    lines += ["", "resolved config:", config.to_json_best_effort(indent=1, sort_keys=True)]
    return "\n".join(lines)
