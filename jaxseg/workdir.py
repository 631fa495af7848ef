"""Reading a jaxseg workdir (of ``jaxseg train`` or ``jaxseg sweep``): cohorts, replicas, weights.

A ``train`` workdir is one cohort (``run.json``, ``history.jsonl``, ``checkpoints/``,
``summary.json`` once it ends). A ``sweep`` workdir holds ``sweep.json``, ``plan.json`` (which
runs each cohort trains) and one such cohort folder per cohort under ``cohorts/``. Everything
here only reads, so it works on a workdir that is being written by a running job (orbax lists
only completed checkpoint steps) or that was left by a killed one.

Replica ids: in a sweep, the run number of ``results.csv`` (``7``) or ``cohort/replica``
(``c001/3``); in a train workdir, the replica index (``2``).
"""

import dataclasses
import json
import os
import socket

import jax
import ml_collections
import numpy as np

from jaxseg import checkpoint, configs, hparams, outputs
from jaxseg.errors import JaxsegError

LOCK = "lock.json"


def write_lock(cohort_dir: str) -> None:
    """Marks a cohort as being trained by this process (removed when it ends); process 0."""
    outputs.write_json(os.path.join(cohort_dir, LOCK),
                       {"pid": os.getpid(), "host": socket.gethostname()})


def remove_lock(cohort_dir: str) -> None:
    """Removes this process's mark of :func:`write_lock` (another process's is left alone)."""
    path = os.path.join(cohort_dir, LOCK)
    lock = _read_json(path)
    if lock and lock.get("pid") == os.getpid() and lock.get("host") == socket.gethostname():
        os.remove(path)


def _trainer_alive(cohort_dir: str) -> bool:
    """Whether the process that holds the cohort's lock still runs (on this host)."""
    lock = _read_json(os.path.join(cohort_dir, LOCK))
    if not lock:
        return False
    if lock.get("host") != socket.gethostname():
        return True  # another machine's process: assume it is alive
    try:
        os.kill(int(lock["pid"]), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _read_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


@dataclasses.dataclass
class Replica:
    """One replica of a workdir and where it stands.

    Attributes:
      id: its id (see the module docstring).
      cohort: the cohort's name (``""`` in a train workdir).
      cohort_dir: the cohort's folder.
      index: its index inside the cohort.
      run: its run number in the sweep (None in a train workdir).
      overrides: the dotted overrides that define it.
      status: ``finished`` | ``stopped`` (early) | ``diverged`` | ``running`` |
        ``interrupted`` | ``pending``.
      epoch: epochs done (of the latest checkpoint).
      epochs: epochs asked for.
      best_epoch: the epoch of its best validation score (0 if not evaluated yet).
      best: the validation metrics at that epoch (or None).
    """

    id: str
    cohort: str
    cohort_dir: str
    index: int
    run: int | None
    overrides: dict
    status: str
    epoch: int
    epochs: int
    best_epoch: int
    best: dict | None


@dataclasses.dataclass
class CohortInfo:
    """One cohort folder: its state, checkpoint steps and replicas."""

    name: str
    dir: str
    state: str
    steps: list[int]
    replicas: list[Replica]


class Workdir:
    """A train or sweep workdir, read at one moment."""

    def __init__(self, path: str):
        """Reads the workdir's files (not the weights).

        Args:
          path: the folder given as ``--workdir``.

        Raises:
          JaxsegError: if ``path`` is not a jaxseg workdir.
        """
        self.path = os.path.abspath(path)
        if os.path.exists(os.path.join(self.path, "sweep.json")):
            self.kind = "sweep"
            sweep = _read_json(os.path.join(self.path, "sweep.json"))
            self.runs = sweep["runs"]
            plan = _read_json(os.path.join(self.path, "plan.json")) or {"cohorts": []}
            names = [c["name"] for c in plan["cohorts"]]
            run_lists = [c["runs"] for c in plan["cohorts"]]
            on_disk = sorted(os.listdir(os.path.join(self.path, "cohorts"))) \
                if os.path.isdir(os.path.join(self.path, "cohorts")) else []
            for name in on_disk:
                if name not in names:
                    names.append(name)
                    run_lists.append(None)
            self.cohorts = [self._cohort(n, os.path.join(self.path, "cohorts", n), rl)
                            for n, rl in zip(names, run_lists, strict=True)]
        elif os.path.exists(os.path.join(self.path, "run.json")):
            self.kind, self.runs = "train", None
            self.cohorts = [self._cohort("", self.path, None)]
        else:
            raise JaxsegError(f"{path} is not a jaxseg workdir (it has neither sweep.json nor "
                              "run.json)")

    @property
    def replicas(self) -> list[Replica]:
        """Every replica, cohort by cohort."""
        return [r for c in self.cohorts for r in c.replicas]

    def _cohort(self, name: str, cdir: str, runs: list[int] | None) -> CohortInfo:
        meta = _read_json(os.path.join(cdir, "run.json"))
        if meta is None:  # planned, not started
            reps = [Replica(id=f"{r}", cohort=name, cohort_dir=cdir, index=i, run=r,
                            overrides=self.runs[r], status="pending", epoch=0, epochs=0,
                            best_epoch=0, best=None) for i, r in enumerate(runs or [])]
            return CohortInfo(name, cdir, "pending", [], reps)
        epochs = int(meta["config"]["train"]["epochs"])
        summary = _read_json(os.path.join(cdir, "summary.json"))
        steps = checkpoint.CohortCheckpoints.steps_in(os.path.join(cdir, "checkpoints"))
        if summary is not None and summary.get("complete"):
            state = "finished"
            host = {"epoch": summary["epochs"],
                    "status": [r["status"] for r in summary["replicas"]],
                    "best_epoch": [r["best_epoch"] for r in summary["replicas"]],
                    "best_metrics": [r["best"] for r in summary["replicas"]]}
        else:
            state = "running" if _trainer_alive(cdir) else "interrupted"
            host = None
            if steps:
                with checkpoint.CohortCheckpoints(os.path.join(cdir, "checkpoints")) as ck:
                    host = ck.restore_host(steps[-1])
        reps = []
        for i, ov in enumerate(meta["overrides"]):
            if host is None:
                status, epoch, best_epoch, best = state, 0, 0, None
            else:
                status, epoch = host["status"][i], host["epoch"]
                best_epoch, best = host["best_epoch"][i], host["best_metrics"][i]
                if status == "running":
                    status = state
            run = runs[i] if runs is not None and i < len(runs) else None
            rid = (str(run) if run is not None else f"{name}/{i}") if self.kind == "sweep" \
                else str(i)
            reps.append(Replica(id=rid, cohort=name, cohort_dir=cdir, index=i, run=run,
                                overrides=self.runs[run] if run is not None else ov,
                                status=status, epoch=epoch, epochs=epochs,
                                best_epoch=best_epoch, best=best))
        return CohortInfo(name, cdir, state, steps, reps)

    def replica(self, rid: str) -> Replica:
        """The replica with id ``rid`` (a run number, ``cohort/index``, or a train index).

        Raises:
          JaxsegError: naming the valid ids, if there is none with this id.
        """
        rid = str(rid)
        for r in self.replicas:
            if rid in (r.id, f"{r.cohort}/{r.index}"):
                return r
        ids = [r.id for r in self.replicas]
        shown = ", ".join(ids[:12]) + (" ..." if len(ids) > 12 else "")
        raise JaxsegError(f"workdir {self.path} has no replica {rid!r}; its replicas: {shown}")


def _run_meta(cohort_dir: str) -> dict:
    """A cohort's ``run.json``, or a clear error when training has not started."""
    meta = _read_json(os.path.join(cohort_dir, "run.json"))
    if meta is None:
        raise JaxsegError(f"{cohort_dir} has not started training (no run.json)")
    return meta


def cohort_config(cohort_dir: str) -> ml_collections.ConfigDict:
    """The config a cohort was trained with (from its ``run.json``)."""
    return configs.with_added_defaults(_run_meta(cohort_dir)["config"])


def replica_config(rep: Replica) -> ml_collections.ConfigDict:
    """A replica's full resolved config: its cohort's config with its overrides applied."""
    meta = _run_meta(rep.cohort_dir)
    return hparams.apply_overrides(configs.with_added_defaults(meta["config"]),
                                   meta["overrides"][rep.index])


def restore_replica(rep: Replica, which: str = "best", step: int | None = None):
    """One replica's weights and state from its cohort's checkpoint.

    Args:
      rep: the replica.
      which: ``best`` (the weights of its best epoch) or ``last`` (of the checkpoint).
      step: the checkpoint step (default: the newest).

    Returns:
      ``(variables, state, host, step)``: ``{"params", "batch_stats"}`` of the replica, its
      full training state (optimizer and plateau state included; NumPy arrays), the
      cohort's host bookkeeping and the step read.
    """
    if which not in ("best", "last"):
        raise JaxsegError(f"weights={which!r}: choose 'best' or 'last'")
    ckdir = os.path.join(rep.cohort_dir, "checkpoints")
    steps = checkpoint.CohortCheckpoints.steps_in(ckdir)
    if not steps:
        raise JaxsegError(f"replica {rep.id} has no checkpoint yet (in {ckdir})")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise JaxsegError(f"replica {rep.id} has no checkpoint step {step}; it has {steps}")
    with checkpoint.CohortCheckpoints(ckdir) as ck:
        state, best, host = ck.restore_raw(step)
    state = jax.tree.map(lambda x: np.asarray(x)[rep.index], state)
    src = jax.tree.map(lambda x: np.asarray(x)[rep.index], best) if which == "best" else state
    variables = {"params": src["params"], "batch_stats": src.get("batch_stats") or {}}
    return variables, state, host, step
