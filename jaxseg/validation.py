"""Every check of a config before anything is loaded or compiled, in one place.

:func:`validate` is called once per cohort by the planner (so ``--dry_run`` and a sweep
refuse a bad grid point before the first cohort trains) and by
:func:`jaxseg.train.train_and_evaluate`. It checks the static choices (names of
optimizers, schedules, losses, model options, strategies, metrics) and every replica's
numeric values; each domain module keeps the rule for its own fields (``optim.validate``,
``losses.validate``, ``models.validate``), and this module is the list of them.
:func:`check_data` holds the checks that need the loaded data (the pixel spacing's fit).
Every failure is a :class:`~jaxseg.errors.JaxsegError` naming the field and its value.
"""

import ml_collections
import numpy as np

from jaxseg import hparams, losses, metrics, models, optim
from jaxseg.data import datasets, preprocess
from jaxseg.engine import evaluate, halving, replicas, steps, tracker
from jaxseg.errors import JaxsegError, check_choice


def _choice(field: str, value, choices) -> None:
    if value not in choices:
        raise JaxsegError(f"{field}={value!r}: choose from {list(choices)}")


def validate(config: ml_collections.ConfigDict, overrides: list[dict] | None = None) -> None:
    """Checks a cohort's config and its replicas' overrides.

    Args:
      config: the cohort's static config.
      overrides: one dict of numeric dotted overrides per replica (None: one replica).

    Raises:
      JaxsegError: naming the first field that is wrong and why.
    """
    t = config.train
    _choice("eval.select", config.eval.select, tracker.SELECT)
    _choice("eval.full_metrics", config.eval.full_metrics, evaluate.FULL_METRICS)
    _choice("train.early_stopping_monitor", t.early_stopping_monitor, tracker.MONITOR)
    if int(t.batch_size) < 1 or int(t.epochs) < 1:
        raise JaxsegError(f"train.batch_size ({t.batch_size}) and train.epochs ({t.epochs}) "
                          "must be >= 1")
    if not float(t.divergence_loss) >= 0:
        raise JaxsegError(f"train.divergence_loss={t.divergence_loss} must be >= 0 (0: only "
                          "non-finite losses count as divergence)")
    if int(t.schedule_epochs) < 0:
        raise JaxsegError(f"train.schedule_epochs={t.schedule_epochs} must be >= 0 (0: the "
                          "schedule spans train.epochs)")
    if config.data.train_on_val and int(config.data.folds):
        raise JaxsegError("data.train_on_val trains on train + val; with data.folds > 0 there "
                          "is no separate validation split to add (set data.folds=0)")
    halving.validate(t.halving)
    if t.halving.metric:
        _choice("train.halving.metric", t.halving.metric, tracker.SELECT)
    replicas.resolve_strategy(t.strategy)
    replicas.chunk_size(t.strategy, t.chunk)
    if not 0 <= float(t.autotune_share) <= 1:
        raise JaxsegError(f"train.autotune_share={t.autotune_share} must be within [0, 1] (the "
                          "share of a cohort's estimated time that train.strategy=auto may "
                          "spend timing the candidates)")
    replicas.resolve_loop(t.loop)
    replicas.compiler_options(t.xla_options)
    models.validate(config.model, int(config.data.num_classes))
    check_choice("data.scaling", config.data.scaling, preprocess.SCALINGS)
    check_choice("data.fit", config.data.fit, preprocess.FITS)
    # Static choices read only once the data are loaded: refused before that.
    _choice("loss.ecn_counts", config.loss.ecn_counts, losses.ECN_COUNTS)
    _choice("eval.bf_convention", config.eval.bf_convention, metrics.BF_CONVENTIONS)
    metrics.hd95_spacing(config.data.spacing, None)  # its fit to the data: check_data

    replica_cfgs = hparams.replica_configs(config, overrides or [{}])
    for c in replica_cfgs:
        optim.validate_schedule(c.optim)
    folds = int(config.data.folds)
    if folds:
        fold = np.array([int(c.data.fold) for c in replica_cfgs])
        if np.any((fold < 0) | (fold >= folds)):
            raise JaxsegError(f"data.fold={fold.tolist()} must be in 0..data.folds-1 "
                              f"(data.folds={folds})")
    table = hparams.table(replica_cfgs)
    optim.validate(config.optim, {k: table[f"optim.{k}"]
                                  for k in ("learning_rate", "weight_decay", "momentum", "l1")})
    losses.validate({k[len("loss.weights."):]: v for k, v in table.items()
                     if k.startswith("loss.weights.")},
                    {k[len("loss.params."):]: v for k, v in table.items()
                     if k.startswith("loss.params.")},
                    int(config.data.num_classes), config.model.head)
    for stage in steps.STAGES:
        v = table[f"model.dropout.{stage}"]
        if np.any((v < 0) | (v >= 1)):
            raise JaxsegError(f"model.dropout.{stage}={v.tolist()} must be in [0, 1)")
    models.check_dropout(config.model, {s: table[f"model.dropout.{s}"] for s in steps.STAGES})
    f = table["data.fraction"]
    if np.any((f <= 0) | (f > 1)):
        raise JaxsegError(f"data.fraction={f.tolist()} must be in (0, 1]")


def check_data(config: ml_collections.ConfigDict, data: datasets.SegData) -> None:
    """The checks that need the loaded data: ``data.spacing`` and ``volume_dice`` against them.

    Raises:
      JaxsegError: naming the field and what the data need.
    """
    val = data.pool if int(config.data.folds) else data.val
    if config.eval.hd95:
        metrics.hd95_spacing(config.data.spacing, val.volume is not None)
    if val.volume is None:  # per-volume Dice needs volumes to average over
        t = config.train
        for field, value in (("eval.select", config.eval.select),
                             ("train.early_stopping_monitor", t.early_stopping_monitor),
                             ("train.halving.metric", t.halving.metric)):
            if value == tracker.PER_VOLUME:
                raise JaxsegError(f"{field}={value} needs a validation split of volumes "
                                  f"(acdc, nifti); {config.data.name}'s validation images are "
                                  "2-D: use dice or dice_image")
