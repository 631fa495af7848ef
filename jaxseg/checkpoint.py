"""Orbax checkpoints of a stacked cohort: state, best weights per replica, host bookkeeping.

One checkpoint step per saved epoch holds three items:

* ``state``: the stacked device state (params, batch statistics, optimizer state with
  each replica's injected hyperparameters, reduce-on-plateau state);
* ``best``: each replica's params and batch statistics at its own best epoch;
* ``host``: JSON with the epoch, each replica's status, best epoch and score,
  early-stopping counters and the train-loss sums of the epochs done.

A step that cannot be read (a file truncated or deleted after it was written, a full disk)
is reported in one line and the newest intact step is used instead (two are kept); the
trainer moves the damaged step aside into ``damaged_checkpoints/`` beside the checkpoints
(nothing is deleted), so that the epoch can be checkpointed again.

Random keys are not stored: every key is derived from the replica's seed, the
epoch and the step, so a resumed run draws exactly what an uninterrupted one
would. Saves are asynchronous: :meth:`CohortCheckpoints.save` copies the arrays on the
device (the next training steps may reuse or free the caller's buffers) and returns; one
background thread hands the copies to orbax and waits for its write while training goes
on (several processes use orbax's own asynchronous save instead, see ``save``). Orbax
writes each step to a temporary folder that it renames when complete, so a kill -9
mid-save leaves the previous step. A write that fails is reported by the next save (or
``close``), naming its step.
"""

import concurrent.futures
import os
import shutil

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from absl import logging

from jaxseg.engine import replicas
from jaxseg.errors import JaxsegError

DAMAGED = "damaged_checkpoints"

# One program copies a whole state on the device (compiled once per state structure).
_copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree),
                compiler_options=replicas.FAST_COMPILE)


def _why(e: BaseException) -> str:
    """The first line of an exception, for a one-line report."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


class CohortCheckpoints:
    """Saves and restores one cohort's checkpoints under ``directory``."""

    def __init__(self, directory: str, max_to_keep: int = 2):
        """Opens (or creates) the checkpoint folder.

        Args:
          directory: the folder (``<workdir>/checkpoints``).
          max_to_keep: how many periodic steps to keep (the newest ones).
        """
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "best", "host"))
        # Why a thread of our own on top of orbax's asynchronous writes: orbax's save still
        # blocks its caller for ~0.1-0.3 s (host copies, folders, metadata, old steps
        # deleted), a stall of every checkpoint epoch; the thread takes it off the training
        # path. Only that thread touches the manager while a write is pending: every other
        # method waits for it first.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="jaxseg-checkpoint")
        self._writing = None  # (step, future) of the write in the background

    def wait(self) -> None:
        """Waits for the step being written in the background.

        Raises:
          JaxsegError: when that step could not be written (a full disk, a read-only
            folder), naming it and the folder; the steps before it are left as they were.
        """
        pending, self._writing = self._writing, None
        step = pending[0] if pending else None
        try:
            if pending is not None and pending[1] is not None:
                pending[1].result()
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise their own types
            raise self._cannot_write(step, e) from e

    def _cannot_write(self, step, e: BaseException) -> JaxsegError:
        return JaxsegError(
            f"cannot write checkpoint step {step} in {self.directory} ({_why(e)}); make "
            "room or fix the folder's permissions, then run the same command again: it "
            "resumes from the last checkpoint written")

    def latest_step(self) -> int | None:
        """The newest complete step (an epoch count), or None (waits for a pending write)."""
        self.wait()
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        """Every complete step on disk (waits for a pending write)."""
        self.wait()
        return list(self.manager.all_steps())

    def save(self, step: int, state, best, host: dict) -> None:
        """Starts writing one step in the background; returns once its arrays are copied.

        The copies are made on the device, so the caller may donate or delete its buffers
        right after. The previous step's write is waited for first (one write at a time).
        A step that exists already (the last epoch's, written again with the best's full
        metrics) is replaced.

        Several processes (``--num_processes``) save from the calling thread, through
        orbax's own asynchronous save: orbax synchronises the processes with programs that
        every process must launch in the same order as its training programs, which a
        thread of its own would not keep.

        Raises:
          JaxsegError: when the previous step could not be written (a full disk, a
            read-only folder), naming it and the folder; this step's own failure is
            reported by the next call that waits (``save``, ``close``, ``latest_step``).
        """
        self.wait()
        if jax.process_count() > 1:
            try:
                self._start(step, state, best, host)
            except Exception as e:  # noqa: BLE001 - orbax and tensorstore raise their own types
                raise self._cannot_write(step, e) from e
            self._writing = (step, None)
            return
        state, best = _copy((state, best))
        self._writing = (step, self._pool.submit(self._write, step, state, best, host))

    def _start(self, step: int, state, best, host: dict) -> None:
        """Hands one step to orbax (which writes its files in the background)."""
        if step in self.manager.all_steps():
            self.manager.delete(step)
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), best=ocp.args.StandardSave(best),
            host=ocp.args.JsonSave(host)), force=True)

    def _write(self, step: int, state, best, host: dict) -> None:
        """Writes one step (on the background thread) and waits until it is on disk."""
        self._start(step, state, best, host)
        self.manager.wait_until_finished()

    def restore(self, step: int, state_like, best_like):
        """Reads one step into the structures of ``state_like`` and ``best_like``.

        Args:
          step: the step to read.
          state_like: a pytree with the state's structure (arrays or shape structs).
          best_like: likewise for the best weights.

        Returns:
          ``(state, best, host)``.
        """
        self.wait()
        abstract = lambda t: jax.tree.map(ocp.utils.to_shape_dtype_struct, t)  # noqa: E731
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract(state_like)),
            best=ocp.args.StandardRestore(abstract(best_like)),
            host=ocp.args.JsonRestore()))
        return out["state"], out["best"], out["host"]

    def restore_newest(self, read, set_aside: bool = False):
        """``read(step)`` of the newest step that can be read, falling back over damaged ones.

        Args:
          read: a function of a step, e.g. ``lambda s: ck.restore(s, state, best)``.
          set_aside: move each damaged step into ``damaged_checkpoints/`` (the trainer does,
            so that it can write that step again); readers leave the folder as it is.

        Returns:
          ``(step, read(step))``, or ``(None, None)`` when there is no step at all.

        Raises:
          JaxsegError: when every step is damaged (naming them and why).
        """
        failures, damaged = [], []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                out = read(step)
            except Exception as e:  # noqa: BLE001 - any damage: report it, try the previous
                failures.append(f"step {step}: {_why(e)}")
                damaged.append(os.path.join(self.directory, str(step)))
                logging.warning("checkpoint %s cannot be read (%s); trying the previous step",
                                damaged[-1], _why(e))
                continue
            # Set aside only once an older step has been read: a failure of every step is
            # more likely a mismatch of this jaxseg with the checkpoints than damage.
            if set_aside and damaged:
                aside = os.path.join(os.path.dirname(self.directory), DAMAGED)
                os.makedirs(aside, exist_ok=True)
                for where in damaged:
                    dest = os.path.join(aside, os.path.basename(where))
                    while os.path.exists(dest):  # damaged before: keep both
                        dest += "+"
                    shutil.move(where, dest)
                self.manager.reload()
            return step, out
        if failures:
            raise JaxsegError(f"no checkpoint in {self.directory} can be read ("
                              + "; ".join(failures) + "); move the folder away to start over")
        return None, None

    def restore_raw(self, step: int):
        """Reads one step without a target structure (NumPy trees; for inspection/export).

        Returns:
          ``(state, best, host)`` with every array stacked over the replicas.
        """
        self.wait()
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), best=ocp.args.StandardRestore(),
            host=ocp.args.JsonRestore()))
        return out["state"], out["best"], out["host"]

    @staticmethod
    def steps_in(directory: str) -> list[int]:
        """The complete steps in a checkpoint folder (empty if there is none); writes nothing."""
        if not os.path.isdir(directory):
            return []
        manager = ocp.CheckpointManager(os.path.abspath(directory),
                                        options=ocp.CheckpointManagerOptions(create=False))
        steps = sorted(manager.all_steps())
        manager.close()
        return steps

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def restore_host(self, step: int) -> dict:
        """Reads only the host bookkeeping of one step (cheap; for inspection)."""
        self.wait()
        return self.manager.restore(step, args=ocp.args.Composite(
            host=ocp.args.JsonRestore()))["host"]

    def close(self):
        """Waits for the pending write and releases the manager.

        Raises:
          JaxsegError: when the pending write failed (see :meth:`wait`).
        """
        try:
            self.wait()
        finally:
            self._pool.shutdown()
            self.manager.close()
