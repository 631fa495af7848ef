"""Trained models: a replica of a workdir, or a folder written by ``jaxseg inspect --export``.

A model is either a replica of a workdir (``--workdir=DIR --replica=ID``, its best weights by
default) or an exported folder: an orbax checkpoint of the replica's weights (``variables/``)
beside its resolved config (``config.json``) and where it came from (``export.json``),
loadable without the sweep. :class:`Model` segments pre-processed images with the same
compiled program options as the engine's evaluation.
"""

import dataclasses
import functools
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from jaxseg import configs, losses, outputs
from jaxseg import workdir as workdir_lib
from jaxseg.engine import replicas
from jaxseg.errors import JaxsegError
from jaxseg.models import create_model

# An exported model's folder.
VARIABLES = "variables"
CONFIG = "config.json"
EXPORT = "export.json"


@dataclasses.dataclass
class Model:
    """A trained replica ready to segment.

    Attributes:
      config: its resolved config.
      variables: ``{"params", "batch_stats"}``.
      meta: where it came from (workdir, replica, epoch, validation metrics).
    """

    config: ml_collections.ConfigDict
    variables: dict
    meta: dict

    @property
    def num_classes(self) -> int:
        """Classes including background."""
        return int(self.config.data.num_classes)

    @functools.cached_property
    def _apply(self):
        module = create_model(self.config.model, self.num_classes)
        head = self.config.model.head

        # The evaluation programs' options: the same convolution kernels, the same masks.
        @functools.partial(jax.jit, compiler_options=replicas.compiler_options(
            self.config.train.get("xla_options", "tuned")))
        def labels(variables, x):
            logits = module.apply(variables, x, train=False)
            return jnp.argmax(losses.class_log_probs(logits, head), -1).astype(jnp.uint8)

        return labels

    def segment(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """Labels of pre-processed images.

        Args:
          images: float32 ``(N, H, W)`` or ``(N, H, W, 1)``, already pre-processed.
          batch_size: images per call.

        Returns:
          uint8 ``(N, H, W)``.
        """
        if images.ndim == 3:
            images = images[..., None]
        variables = {"params": self.variables["params"]}
        if self.variables.get("batch_stats"):
            variables["batch_stats"] = self.variables["batch_stats"]
        out = [np.asarray(self._apply(variables, images[i:i + batch_size]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, *images.shape[1:3]), np.uint8)


def from_workdir(path: str, replica: str, which: str = "best") -> Model:
    """Loads one replica of a train or sweep workdir.

    Args:
      path: the workdir.
      replica: its id (``jaxseg inspect`` lists them).
      which: ``best`` or ``last`` weights.

    Returns:
      The model.
    """
    return from_replica(workdir_lib.Workdir(path).replica(replica), which)


def from_replica(rep: workdir_lib.Replica, which: str = "best") -> Model:
    """Loads one replica of a workdir (see :func:`from_workdir`)."""
    variables, _, track, step = workdir_lib.restore_replica(rep, which)
    rec = track.replicas[rep.index]
    epoch = rec.best_epoch if which == "best" else track.epoch
    meta = {"cohort_dir": rep.cohort_dir, "replica": rep.id, "cohort": rep.cohort,
            "index": rep.index, "run": rep.run, "overrides": rep.overrides, "weights": which,
            "epoch": epoch, "checkpoint_step": step,
            "val_metrics": rec.best_metrics if which == "best" else rec.last_metrics}
    return Model(workdir_lib.replica_config(rep), variables, outputs.jsonable(meta))


def export(model: Model, path: str) -> str:
    """Writes a model as a standalone folder (orbax checkpoint + config + provenance).

    Args:
      model: the model.
      path: the folder to create (must not exist).

    Returns:
      The absolute path.
    """
    path = os.path.abspath(path)
    if os.path.exists(path):
        raise JaxsegError(f"export folder {path} already exists; choose a new --export path")
    os.makedirs(path)
    with ocp.StandardCheckpointer() as ck:
        ck.save(os.path.join(path, VARIABLES), model.variables)
    with open(os.path.join(path, CONFIG), "w") as f:
        f.write(model.config.to_json_best_effort(indent=1))
    outputs.write_json(os.path.join(path, EXPORT), model.meta)
    return path


def from_export(path: str) -> Model:
    """Loads a folder written by :func:`export`."""
    path = os.path.abspath(path)
    if not os.path.exists(os.path.join(path, EXPORT)):
        raise JaxsegError(f"{path} is not an exported jaxseg model (no {EXPORT}); export "
                          "one with `jaxseg inspect --workdir=DIR --replica=ID --export=PATH`")
    with open(os.path.join(path, CONFIG)) as f:
        config = configs.with_added_defaults(json.load(f))
    with open(os.path.join(path, EXPORT)) as f:
        meta = json.load(f)
    with ocp.StandardCheckpointer() as ck:
        variables = ck.restore(os.path.join(path, VARIABLES))
    variables = jax.tree.map(np.asarray, variables)
    return Model(config, {"params": variables["params"],
                          "batch_stats": variables.get("batch_stats") or {}}, meta)


def load(model: str | None, workdir: str | None, replica: str | None,
         which: str = "best") -> Model:
    """The model the ``predict`` flags name: ``--model=EXPORT`` or ``--workdir`` + ``--replica``."""
    if model:
        return from_export(model)
    if workdir and replica is not None:
        return from_workdir(workdir, replica, which)
    raise JaxsegError("name the model: --model=EXPORTED_FOLDER, or --workdir=DIR --replica=ID")
