"""What a run leaves in its workdir besides checkpoints: history, summary, TensorBoard, progress.

* ``history.jsonl``: one JSON record per replica per evaluation (epoch, losses, every
  metric per class, learning rate, status). On resume, records after the restored
  epoch are dropped first, so the file equals an uninterrupted run's.
* ``summary.json``: per replica its hyperparameters, status, best epoch and metrics.
* ``tensorboard/r<i>/``: event files through clu's metric writers, when the
  ``tensorboard`` extra (TensorFlow) is installed.
* A progress line per epoch: replicas alive, best Dice so far, time per epoch, ETA.
"""

import json
import math
import os

import numpy as np
from absl import logging


def jsonable(value):
    """Converts NumPy values (and NaN, which JSON lacks) into plain JSON values."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def is_writer() -> bool:
    """Whether this process writes the workdir's files (process 0 of a multi-host run).

    Every process trains and checkpoints its share (orbax coordinates the checkpoint
    writes); history, summaries and tables are written once, by process 0.
    """
    import jax

    return jax.process_index() == 0


def write_json(path: str, value) -> None:
    """Writes ``value`` as JSON atomically (temporary file, then rename); process 0 only."""
    if not is_writer():
        return
    # A temporary file of this process's own: two launches writing one file at once (two
    # sweeps started together write the same sweep.json) must not move each other's.
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(jsonable(value), f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_jsonl(path: str) -> list[dict]:
    """Reads a JSON Lines file (a missing file is empty; a torn last line is skipped)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill; everything after it is untrustworthy
    return out


class History:
    """Appends evaluation records to ``history.jsonl``."""

    def __init__(self, path: str, resume_epoch: int):
        """Opens the history, keeping only records up to ``resume_epoch``.

        Args:
          path: the JSON Lines file.
          resume_epoch: the epoch count of the restored checkpoint (0 for a fresh run).
        """
        self.path = path
        if not is_writer():
            return
        kept = [r for r in read_jsonl(path) if r["epoch"] <= resume_epoch]
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            for r in kept:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, path)

    def append(self, records: list[dict]) -> None:
        """Appends records and flushes them to disk (process 0 only)."""
        if not is_writer():
            return
        with open(self.path, "a") as f:
            for r in records:
                f.write(json.dumps(jsonable(r)) + "\n")


class TensorBoard:
    """One clu SummaryWriter per replica, or nothing when TensorFlow is not installed."""

    def __init__(self, logdir: str, num_replicas: int):
        """Creates ``logdir/r<i>`` writers if the ``tensorboard`` extra is installed."""
        self.writers = []
        if not is_writer():
            return
        try:
            from clu import metric_writers  # imports TensorFlow
        except ImportError:
            logging.info("TensorBoard files skipped: install the 'tensorboard' extra "
                         "(pip install 'jaxseg[tensorboard]') to write them.")
            return
        self.writers = [metric_writers.SummaryWriter(os.path.join(logdir, f"r{i:03d}"))
                        for i in range(num_replicas)]

    def write(self, replica: int, step: int, scalars: dict) -> None:
        """Writes the finite scalars of one replica at ``step``."""
        if self.writers:
            clean = {k: float(v) for k, v in scalars.items()
                     if isinstance(v, (int, float)) and math.isfinite(v)}
            self.writers[replica].write_scalars(step, clean)

    def close(self) -> None:
        """Flushes and closes every writer."""
        for w in self.writers:
            w.flush()
            w.close()


class Progress:
    """Formats and logs the per-epoch progress line with an ETA."""

    def __init__(self, total_epochs: int, num_replicas: int, label=""):
        """Starts an empty record of epoch times.

        Args:
          total_epochs: the run's epochs.
          num_replicas: R.
          label: a prefix, e.g. the cohort name.
        """
        self.total, self.num_replicas, self.label = total_epochs, num_replicas, label
        self.epoch_times: list[float] = []

    def epoch_done(self, epoch: int, seconds: float, alive: int, best_dice: float,
                   best_replica: int, train_loss: float, compile_s: float = 0.0) -> str:
        """Logs and returns the line for a finished epoch (1-based ``epoch``).

        ``compile_s``: the part of ``seconds`` spent compiling the training program, left
        out of the ETA.
        """
        self.epoch_times.append(seconds - compile_s)
        # The first epoch also compiles the evaluation: estimate from the later ones.
        steady = self.epoch_times[1:] or self.epoch_times
        eta = float(np.median(steady)) * (self.total - epoch)
        dice = "-" if not math.isfinite(best_dice) else f"{best_dice:.4f} (r{best_replica})"
        line = (f"{self.label}epoch {epoch}/{self.total} | replicas alive {alive}/"
                f"{self.num_replicas} | train loss {train_loss:.4f} | best val dice {dice} | "
                f"{seconds:.1f}s/epoch | ETA {format_seconds(eta)}")
        logging.info(line)
        return line


def format_seconds(s: float) -> str:
    """``3725`` -> ``1h02m05s``."""
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"
