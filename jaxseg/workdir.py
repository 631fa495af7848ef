"""A jaxseg workdir (of ``jaxseg train`` or ``jaxseg sweep``): its layout, its guard, reading it.

This module owns the workdir: every file name below is written and read through it.

A cohort folder (a ``train`` workdir, or ``<sweep>/cohorts/<name>/``)::

  run.json        the cohort's identity (config and per-replica overrides); the guard
  replicas.json   the hyperparameter table, training images per replica, strategy
  history.jsonl   one record per replica per evaluation
  checkpoints/    orbax steps (state, best weights, the replica tracker)
  tensorboard/    clu event files (with the ``tensorboard`` extra)
  summary.json    per-replica results; ``"complete": true`` once the cohort is done
  lock.json       while a process trains it (removed when it ends)

A sweep folder::

  sweep.json      the sweep's identity (config and runs); the guard
  plan.json       which runs each cohort trains
  halving.json    the rung decisions of a grid-wide successive halving (``group=grid``)
  cohorts/<name>/ one cohort folder per cohort
  results.csv|json|md   the tables, once every cohort is complete
  report/         ``jaxseg report``'s default output

Reading only reads, so it works on a workdir that is being written by a running job (orbax
lists only completed checkpoint steps) or that was left by a killed one.

Replica ids: in a sweep, the run number of ``results.csv`` (``7``) or ``cohort/replica``
(``c001/3``); in a train workdir, the replica index (``2``).
"""

import dataclasses
import fcntl
import json
import os
import socket
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxseg import checkpoint, configs, hparams, outputs
from jaxseg.engine import tracker as tracker_lib
from jaxseg.errors import JaxsegError

RUN = "run.json"
REPLICAS = "replicas.json"
HISTORY = "history.jsonl"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
SUMMARY = "summary.json"
LOCK = "lock.json"
SWEEP = "sweep.json"
PLAN = "plan.json"
HALVING = "halving.json"
COHORTS = "cohorts"
RESULTS = "results"  # results.csv, results.json, results.md
REPORT = "report"


def cohort_path(sweep_dir: str, name: str) -> str:
    """The folder of cohort ``name`` in a sweep workdir."""
    return os.path.join(sweep_dir, COHORTS, name)


def guard(directory: str, record: str, identity: dict, kind: str, write: bool = True) -> None:
    """Refuses a workdir that holds a different run or sweep; records a new one.

    The one guard of ``train`` (``run.json``) and ``sweep`` (``sweep.json``): resuming is
    allowed only when the recorded identity equals this launch's (fields added to jaxseg
    since the record was written count as equal at their default).

    Args:
      directory: the workdir (or cohort folder).
      record: :data:`RUN` or :data:`SWEEP`.
      identity: ``{"config": configs.identity(config), ...}`` (overrides or runs).
      kind: ``run`` or ``sweep`` (for the message).
      write: record the identity when the workdir has none yet (``False``: only check;
        ``train`` records once its data are loaded and checked, so a launch that fails
        before that leaves nothing a corrected command would be refused by).

    Raises:
      JaxsegError: naming the fields that differ.
    """
    path = os.path.join(directory, record)
    identity = outputs.jsonable(identity)
    old = _read_json(path)
    if old is None:
        if write:
            outputs.write_json(path, identity)
        return
    # An older jaxseg recorded execution fields and paths as given: compare what they mean.
    old = {**old, "config": configs.identity(old.get("config", {}))}
    identity = {**identity, "config": configs.without_added_defaults(
        old["config"], configs.identity(identity["config"]))}
    if old == identity:
        return
    a, b = configs.flatten(old), configs.flatten(identity)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    shown = "; ".join(f"{k}: {a.get(k, '(none)')!r} recorded, {b.get(k, '(none)')!r} now"
                      for k in diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4
                                            else "")
    raise JaxsegError(f"workdir {directory} holds a different {kind} (differs in {shown}); "
                      "results would mix. Use a new --workdir, or delete the old one to "
                      "start over")


def completed(cohort_dir: str) -> dict | None:
    """A cohort's summary if it is complete (every epoch trained or every replica frozen)."""
    summary = _read_json(os.path.join(cohort_dir, SUMMARY))
    return summary if summary and summary.get("complete") else None


def acquire_lock(cohort_dir: str) -> None:
    """Takes the cohort's lock for this process, or refuses naming the process that holds it.

    The lock is ``lock.json`` created with ``O_CREAT | O_EXCL``, which only one process can
    do, on a local or a shared (NFS) folder alike; it names the holder's host, pid and start
    time. A lock whose process no longer runs on this host (killed, crashed) is taken over
    with a warning; one held from another host is respected (this host cannot tell whether
    that process lives). Each cohort has its own lock, so ``--cohorts`` can split one grid
    between machines over a shared folder. On several hosts process 0 holds it.

    Raises:
      JaxsegError: when a live process holds the lock.
    """
    if not outputs.is_writer():
        return
    path = os.path.join(cohort_dir, LOCK)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    # One local process at a time checks and takes the lock (a dead holder's lock is then
    # replaced by exactly one of them); O_EXCL is what excludes other hosts.
    with open(path + ".guard", "a") as guard_file:
        fcntl.flock(guard_file, fcntl.LOCK_EX)
        try:
            for _ in range(2):
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    holder = _read_lock(path)
                    if _alive(holder):
                        raise JaxsegError(
                            f"cohort {cohort_dir} is being trained by process "
                            f"{holder.get('pid')} on {holder.get('host')} since "
                            f"{holder.get('since', '?')}; wait for it to end, or train other "
                            "cohorts (--cohorts). If that process is gone (its machine "
                            f"crashed), delete {path}") from None
                    logging.warning("taking over %s: its process %s on %s is no longer "
                                    "running", path, (holder or {}).get("pid"),
                                    (holder or {}).get("host"))
                    os.remove(path)
                    continue
                with os.fdopen(fd, "w") as f:
                    json.dump(me, f)
                return
        finally:
            fcntl.flock(guard_file, fcntl.LOCK_UN)


def remove_lock(cohort_dir: str) -> None:
    """Releases this process's lock of :func:`acquire_lock` (another process's is left alone)."""
    path = os.path.join(cohort_dir, LOCK)
    lock = _read_lock(path)
    if lock and lock.get("pid") == os.getpid() and lock.get("host") == socket.gethostname():
        os.remove(path)


def _read_lock(path: str) -> dict | None:
    """A lock file's holder (None if there is none, or it is unreadable: torn by a crash)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _alive(holder: dict | None) -> bool:
    """Whether a lock's holder still runs (a process of another host is assumed to)."""
    if not holder:
        return False
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except (ProcessLookupError, ValueError, KeyError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _trainer_alive(cohort_dir: str) -> bool:
    """Whether the process that holds the cohort's lock still runs."""
    return _alive(_read_lock(os.path.join(cohort_dir, LOCK)))


def _read_json(path: str):
    """A workdir's JSON file (None if absent); a damaged one is named in a JaxsegError."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise JaxsegError(f"{path} is damaged ({e}); restore it from a copy, or delete the "
                          "folder holding it to start that part over") from None


def read_halving(sweep_dir: str) -> dict:
    """The grid-wide halving's recorded rung decisions (``{}``: none yet)."""
    return _read_json(os.path.join(sweep_dir, HALVING)) or {}


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
      status: ``finished`` | ``stopped`` (early) | ``diverged`` | ``pruned`` (successive
        halving) | ``running`` | ``interrupted`` | ``pending``.
      epoch: epochs done (of the latest checkpoint).
      epochs: epochs asked for.
      best_epoch: the epoch of its best validation score (0 if not evaluated yet).
      best: the validation metrics at that epoch (or None).
      stopped_epoch: the epoch it stopped, diverged or was pruned in (None: it did not).
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
    stopped_epoch: int | None = None


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
        if os.path.exists(os.path.join(self.path, SWEEP)):
            self.kind = "sweep"
            sweep = _read_json(os.path.join(self.path, SWEEP))
            self.runs = sweep["runs"]
            plan = _read_json(os.path.join(self.path, PLAN)) or {"cohorts": []}
            names = [c["name"] for c in plan["cohorts"]]
            run_lists = [c["runs"] for c in plan["cohorts"]]
            on_disk = sorted(os.listdir(os.path.join(self.path, COHORTS))) \
                if os.path.isdir(os.path.join(self.path, COHORTS)) else []
            for name in on_disk:
                if name not in names:
                    names.append(name)
                    run_lists.append(None)
            self.cohorts = [self._cohort(n, cohort_path(self.path, n), rl)
                            for n, rl in zip(names, run_lists, strict=True)]
        elif os.path.exists(os.path.join(self.path, RUN)):
            self.kind, self.runs = "train", None
            self.cohorts = [self._cohort("", self.path, None)]
        else:
            raise JaxsegError(f"{path} is not a jaxseg workdir (it has neither {SWEEP} nor "
                              f"{RUN})")

    @property
    def replicas(self) -> list[Replica]:
        """Every replica, cohort by cohort."""
        return [r for c in self.cohorts for r in c.replicas]

    def _cohort(self, name: str, cdir: str, runs: list[int] | None) -> CohortInfo:
        meta = _read_json(os.path.join(cdir, RUN))
        if meta is None:  # planned, not started
            reps = [Replica(id=f"{r}", cohort=name, cohort_dir=cdir, index=i, run=r,
                            overrides=self.runs[r], status="pending", epoch=0, epochs=0,
                            best_epoch=0, best=None) for i, r in enumerate(runs or [])]
            return CohortInfo(name, cdir, "pending", [], reps)
        epochs = int(meta["config"]["train"]["epochs"])
        summary = completed(cdir)
        steps = checkpoint.CohortCheckpoints.steps_in(os.path.join(cdir, CHECKPOINTS))
        if summary is not None:
            state, track = "finished", tracker_lib.Tracker.from_summary(summary)
        else:
            state = "running" if _trainer_alive(cdir) else "interrupted"
            track = None
            if steps:
                with checkpoint.CohortCheckpoints(os.path.join(cdir, CHECKPOINTS)) as ck:
                    _, host = ck.restore_newest(ck.restore_host)
                    track = tracker_lib.Tracker.from_json(host)
        reps = []
        for i, ov in enumerate(meta["overrides"]):
            stopped = None
            if track is None:
                status, epoch, best_epoch, best = state, 0, 0, None
            else:
                rec = track.replicas[i]
                status, epoch, best_epoch, best = (rec.status, track.epoch, rec.best_epoch,
                                                   rec.best_metrics)
                stopped = rec.stopped_epoch
                if status == tracker_lib.RUNNING:
                    status = state
            run = runs[i] if runs is not None and i < len(runs) else None
            rid = (str(run) if run is not None else f"{name}/{i}") if self.kind == "sweep" \
                else str(i)
            reps.append(Replica(id=rid, cohort=name, cohort_dir=cdir, index=i, run=run,
                                overrides=self.runs[run] if run is not None else ov,
                                status=status, epoch=epoch, epochs=epochs,
                                best_epoch=best_epoch, best=best, stopped_epoch=stopped))
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
    meta = _read_json(os.path.join(cohort_dir, RUN))
    if meta is None:
        raise JaxsegError(f"{cohort_dir} has not started training (no {RUN})")
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
      ``(variables, state, tracker, step)``: ``{"params", "batch_stats"}`` of the replica,
      its full training state (optimizer and plateau state included; NumPy arrays), the
      cohort's :class:`~jaxseg.engine.tracker.Tracker` at that step, and the step read.
    """
    if which not in ("best", "last"):
        raise JaxsegError(f"weights={which!r}: choose 'best' or 'last'")
    ckdir = os.path.join(rep.cohort_dir, CHECKPOINTS)
    steps = checkpoint.CohortCheckpoints.steps_in(ckdir)
    if not steps:
        raise JaxsegError(f"replica {rep.id} has no checkpoint yet (in {ckdir})")
    if step is not None and int(step) not in steps:
        raise JaxsegError(f"replica {rep.id} has no checkpoint step {step}; it has {steps}")
    with checkpoint.CohortCheckpoints(ckdir) as ck:
        if step is None:  # the newest intact step
            step, (state, best, host) = ck.restore_newest(ck.restore_raw)
        else:
            step = int(step)
            state, best, host = ck.restore_raw(step)
    state = jax.tree.map(lambda x: np.asarray(x)[rep.index], state)
    src = jax.tree.map(lambda x: np.asarray(x)[rep.index], best) if which == "best" else state
    variables = {"params": src["params"], "batch_stats": src.get("batch_stats") or {}}
    return variables, state, tracker_lib.Tracker.from_json(host), step
