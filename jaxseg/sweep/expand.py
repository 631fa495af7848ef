"""Experiment files and their sweeps.

An experiment file defines ``get_config([arg])`` and optionally ``sweep(add[, arg])``, where
every ``add(**{"dotted.key": value})`` is one run. :func:`grid` writes a product of named
axes the same way, with seeds and k-fold folds as axes like any other::

    def sweep(add, arg=None):
        grid(add, {"loss.params.lam": [0.1, 0.5, 0.9], "optim.weight_decay": [0, 1e-4]},
             seeds=3, folds=5)
"""

import importlib.util
import inspect
import itertools
import os

from jaxseg.errors import JaxsegError


def load_experiment(config_arg: str):
    """Imports an experiment file given as ``PATH[:ARG]``.

    Args:
      config_arg: the ``--config`` value.

    Returns:
      ``(module, arg)``; ``arg`` is None when the value has no ``:ARG``.
    """
    path, sep, arg = config_arg.partition(":")
    if not os.path.exists(path):
        raise JaxsegError(f"experiment file not found: {path}")
    spec = importlib.util.spec_from_file_location(
        "jaxseg_experiment_" + os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, (arg if sep else None)


def arguments(fn, first: bool = False) -> bool:
    """Whether an experiment's ``get_config`` (or ``sweep``, after ``add``) takes ``ARG``."""
    return len(inspect.signature(fn).parameters) > (1 if first else 0)


def _call(fn, first, arg):
    takes_arg = arguments(fn, first is not None)
    args = ([first] if first is not None else []) + ([arg] if takes_arg else [])
    return fn(*args)


def expand(module, arg) -> list[dict]:
    """The runs of an experiment: one dict of dotted overrides per run (``[{}]`` without a sweep).

    Args:
      module: the experiment module.
      arg: its argument (or None).

    Returns:
      The runs, in the order ``sweep`` added them.
    """
    if not hasattr(module, "sweep"):
        return [{}]
    runs: list[dict] = []

    def add(**overrides):
        runs.append({k.replace("__", "."): v for k, v in overrides.items()})

    _call(module.sweep, add, arg)
    return runs or [{}]


def grid(add, axes: dict, seeds: int = 0, folds: int = 0, **fixed) -> None:
    """Adds the product of named axes (and seeds, folds) as runs.

    Args:
      add: the ``add`` callback of ``sweep``.
      axes: ``{"dotted.key": [values]}``; the product of all axes is added.
      seeds: > 0: an axis ``seed`` over ``0..seeds-1``.
      folds: >= 2: k-fold cross-validation over train + val, an axis ``data.fold``.
      **fixed: dotted overrides (``a__b=v`` for ``a.b``) shared by every run.
    """
    axes = dict(axes)
    if seeds:
        axes["seed"] = list(range(int(seeds)))
    if folds:
        if folds < 2:
            raise JaxsegError(f"folds={folds}: k-fold cross-validation needs >= 2 folds")
        fixed["data.folds"] = int(folds)
        axes["data.fold"] = list(range(int(folds)))
    keys = list(axes)
    for values in itertools.product(*(axes[k] for k in keys)):
        add(**{**{k.replace("__", "."): v for k, v in fixed.items()},
               **dict(zip(keys, values, strict=True))})
