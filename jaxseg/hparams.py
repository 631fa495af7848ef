"""Per-replica hyperparameter tables: which fields may differ inside one cohort, and their values.

A cohort is one static config plus R sets of *replica overrides*: dotted keys
from :data:`jaxseg.configs.REPLICA_FIELDS`, ``loss.weights.<term>`` for a term the
config already has, or ``loss.params.<name>``. Anything else changes the
compiled program and needs its own cohort.
"""

import copy
import json

import ml_collections
import numpy as np

from jaxseg import configs, losses, optim
from jaxseg.errors import JaxsegError

# Override fields that repeat a configuration rather than define it: its seeds and folds.
REPEAT_AXES = ("seed", "data.fold")


def configuration_key(values: dict) -> str:
    """Which configuration dotted ``values`` define: them without seed and fold, as JSON.

    Runs (or replicas) with the same key differ only in what repeats a configuration; the
    results tables aggregate them, and successive halving ranks and stops them together.
    """
    return json.dumps({k: v for k, v in values.items() if k not in REPEAT_AXES},
                      sort_keys=True, default=str)


def is_replica_field(key: str, config: ml_collections.ConfigDict) -> bool:
    """Whether the dotted ``key`` may take a different value per replica of ``config``."""
    if key in configs.REPLICA_FIELDS or key in configs.HOST_REPLICA_FIELDS:
        return True
    if key.startswith("loss.weights."):
        return key.split(".", 2)[2] in config.loss.weights
    return key.startswith("loss.params.") and key.split(".", 2)[2] in losses.PARAMS


def normalise_key(key: str) -> str:
    """``optim__learning_rate`` -> ``optim.learning_rate`` (Python keyword friendly)."""
    return key.replace("__", ".")


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: dict) -> ml_collections.ConfigDict:
    """Returns a copy of ``config`` with dotted-key ``overrides`` set.

    Args:
      config: the base config.
      overrides: ``{"a.b": value}``.

    Returns:
      The new config; an unknown key raises a JaxsegError naming it.
    """
    config = copy.deepcopy(config)
    for key, value in overrides.items():
        key = normalise_key(key)
        if key == "label":  # a run's name in result tables, not a config field
            continue
        *path, leaf = key.split(".")
        node = config
        for part in path:
            if part not in node:
                raise JaxsegError(f"unknown config field {key!r}")
            node = node[part]
        if leaf not in node and not key.startswith("loss.weights."):
            raise JaxsegError(f"unknown config field {key!r}")
        with node.ignore_type():
            node[leaf] = value
    return config


def get_field(config: ml_collections.ConfigDict, key: str):
    """The value of a dotted field (``"optim.lr"``); a missing field raises KeyError."""
    node = config
    for part in normalise_key(key).split("."):
        node = node[part]
    return node


def replica_configs(config: ml_collections.ConfigDict, overrides: list[dict]) -> list:
    """Resolves one config per replica, checking every override is numeric-only.

    Args:
      config: the cohort's static config.
      overrides: one dict of dotted overrides per replica (``[{}]`` for a single run).

    Returns:
      The list of resolved configs.
    """
    if not overrides:
        overrides = [{}]
    out = []
    for i, o in enumerate(overrides):
        for key in o:
            if not is_replica_field(normalise_key(key), config):
                raise JaxsegError(
                    f"replica {i}: {normalise_key(key)!r} changes the compiled program and "
                    "cannot differ inside one cohort; run such grids with `jaxseg sweep`")
        out.append(apply_overrides(config, o))
    return out


def table(configs_: list[ml_collections.ConfigDict]) -> dict[str, np.ndarray]:
    """Stacks the per-replica numeric fields of resolved configs into arrays.

    Args:
      configs_: the replicas' resolved configs.

    Returns:
      ``{field: (R,) array}`` for every replica field, loss weight and loss parameter;
      ``optim.momentum`` is resolved to the family default where it is ``-1``.
    """
    base = configs_[0]
    keys = list(configs.REPLICA_FIELDS)
    keys += [f"loss.weights.{t}" for t in base.loss.weights]
    keys += [f"loss.params.{p}" for p in base.loss.params]
    t = {}
    for key in keys:
        if key == "optim.momentum":
            t[key] = np.array([optim.resolve_momentum(c.optim) for c in configs_], np.float32)
        elif key in ("seed", "data.subset_seed"):
            t[key] = np.array([int(get_field(c, key)) for c in configs_], np.int64)
        else:
            t[key] = np.array([float(get_field(c, key)) for c in configs_], np.float32)
    return t
