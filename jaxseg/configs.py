"""The default config every experiment starts from: every field, documented once.

Experiment files in ``experiments/``
override what they need (``config = configs.default(); config.x = ...``) and any
field can be overridden on the command line with ``--config.a.b=value``.
Fields that change the compiled program (architecture, optimizer family,
schedule kind, loss terms present, batch and image size, dataset, epochs) are
*static*; every numeric hyperparameter listed in :data:`REPLICA_FIELDS` may
differ between the replicas of one cohort. Values are checked by
:func:`jaxseg.validation.validate`, not here.
"""

import json
import os

import ml_collections

# Numeric fields that may take a different value in every replica of one cohort.
# Loss weights and loss parameters (loss.weights.*, loss.params.*) are replica fields too.
REPLICA_FIELDS = (
    "seed",
    "optim.learning_rate",
    "optim.weight_decay",
    "optim.momentum",
    "optim.l1",
    "model.dropout.encoder",
    "model.dropout.bottleneck",
    "model.dropout.decoder",
    "data.fraction",
    "data.subset_seed",
)
# Replica fields the host applies (the learning-rate schedule is a per-epoch factor computed
# on the host; the fold picks host-side index sets), so they may differ per replica too.
HOST_REPLICA_FIELDS = (
    "optim.schedule",
    "optim.step_every",
    "optim.step_factor",
    "optim.decay_rate",
    "optim.hold_epochs",
    "optim.piece_every",
    "optim.piece_factor",
    "optim.cosine_min",
    # k-fold: which images a replica trains and is evaluated on is chosen on the host
    # (per-replica training masks and evaluation indices over the pooled images).
    "data.fold",
)


# The class names of the cardiac sets (cmr96, acdc, the phantom), the default.
CARDIAC_CLASSES = ("bg", "RV", "MYO", "LV")


def resolve_classes(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Makes a config's classes follow from its masks, in place (idempotent).

    A ``folder`` set with ``data.grey_levels`` has one class per grey level:
    ``data.num_classes`` becomes their count. Names left at the cardiac default for another
    class count become ``bg``, ``grey<level>`` (or ``class<c>`` without grey levels); names
    given explicitly must name every class. With ``data.classes`` (:mod:`jaxseg.data.classes`)
    ``num_classes`` and ``class_names`` become the task's, and the data's own are kept in
    ``data.source_num_classes`` and ``data.source_class_names``.

    Returns:
      The config.

    Raises:
      JaxsegError: if ``data.class_names`` names another number of classes, or
        ``data.classes`` a class the data do not have.
    """
    resolve_data_classes(config.data)
    return config


def resolve_data_classes(d: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """:func:`resolve_classes` on the ``data`` part of a config alone (in place); returns it."""
    from jaxseg.data import classes
    from jaxseg.errors import JaxsegError

    if d.classes and d.source_class_names:  # resolved before: the data's classes recorded
        n, names = int(d.source_num_classes), tuple(d.source_class_names)
    else:
        grey = d.grey_levels if d.name == "folder" else None
        if grey is not None:
            d.num_classes = len(grey)
        n, names = int(d.num_classes), tuple(d.class_names)
        listed = _nifti_label_names(d)  # an nnU-Net dataset.json names the classes
        if listed is not None:
            n, names = len(listed), listed if names == CARDIAC_CLASSES else names
        if names == CARDIAC_CLASSES and n != len(CARDIAC_CLASSES):
            names = ("bg",) + tuple(f"grey{g}" for g in grey[1:]) if grey is not None \
                else ("bg",) + tuple(f"class{c}" for c in range(1, n))
        elif len(names) != n:
            raise JaxsegError(
                f"data.class_names {list(names)} name {len(names)} classes but the data have "
                f"{n}" + (f" (one per data.grey_levels {list(grey)})" if grey is not None
                          else " (data.num_classes)"))
    if d.classes:  # the task's classes (jaxseg.data.classes)
        groups = classes.parse(d.classes, names)
        d.source_num_classes, d.source_class_names = n, names
        n, names = 1 + len(groups), classes.group_names(groups, names)
    d.num_classes, d.class_names = n, names
    return d


def _nifti_label_names(d: ml_collections.ConfigDict) -> tuple[str, ...] | None:
    """The class names of a ``nifti`` set's ``dataset.json``, or None without one."""
    if d.name != "nifti" or not d.source_dir:
        return None
    from jaxseg.data import nifti

    return nifti.label_names(os.path.expanduser(d.source_dir))


def default() -> ml_collections.ConfigDict:
    """Returns the default config: a small U-Net on the built-in phantom data."""
    c = ml_collections.ConfigDict()
    c.seed = 0  # model init, batch order, augmentation and dropout of this run

    c.data = d = ml_collections.ConfigDict()
    d.name = "phantom"  # phantom | cmr96 | acdc | folder | nifti
    d.source_dir = ""  # raw data folder for cmr96 / acdc / folder / nifti
    d.tfds_dir = os.environ.get("JAXSEG_TFDS_DIR", "~/.cache/jaxseg/tensorflow_datasets")
    # Including background; folder: follows grey_levels, nifti: dataset.json's labels.
    d.num_classes = 4
    d.class_names = CARDIAC_CLASSES  # for tables and reports (other class counts: class1...)
    d.grey_levels = ml_collections.FieldReference(None, field_type=tuple)  # folder masks
    # The task's foreground classes, e.g. "RV" (RV vs the rest) or "MYO+LV,RV" (merged):
    # names or indices of the data's classes, the others background (jaxseg/data/classes.py).
    d.classes = ""
    d.source_num_classes = 0  # set from the data when data.classes is given (not by hand)
    d.source_class_names = ml_collections.FieldReference((), field_type=tuple)
    d.train_split = "train"
    d.val_split = "val"
    d.image_size = 96  # every image is fitted to this side (data.fit); 0 keeps the files' size
    d.fit = "crop"  # crop (centre crop/pad to image_size) | resize (scale; masks nearest)
    d.scaling = "none"  # none | minmax | percentile (per image)
    d.clahe = False
    d.clahe_clip_limit = 0.01
    d.clahe_tiles = 8
    d.fraction = 1.0  # fraction of the training images this run trains on
    d.subset_seed = 0  # which images a fraction < 1 keeps
    d.folds = 0  # >= 2: k-fold cross-validation over train + val
    d.fold = 0  # the held-out fold (a replica field: the folds of a grid share one cohort)
    d.fold_seed = 0  # the shuffle that deals images (volumes) to folds
    # Train on train + val pooled: a final model once the hyperparameters are chosen (jaxseg
    # refit); the validation numbers then come from images the model trained on.
    d.train_on_val = False
    # Pixel size in mm, (row, col), or (slice, row, col) for volume splits: HD95 in mm.
    # Empty: unknown (PNG folders; the ACDC HDF5 conversion keeps none), HD95 in pixels;
    # NIfTI volumes bring their own from their headers (given here, it overrides them).
    d.spacing = ml_collections.FieldReference((), field_type=tuple)  # mm; () unknown
    d.phantom = ml_collections.ConfigDict(
        dict(size=96, seed=0, num_train=160, num_val=40, num_test=40))

    c.augment = a = ml_collections.ConfigDict()
    a.hflip = False
    a.vflip = False
    a.rotation = 0.0  # max degrees, uniform in [-r, r]; 180 for any orientation
    a.translation = 0.0  # max pixels, uniform in [-t, t] on each axis
    a.crop = 0  # > 0: random crop of this side (training only)

    c.model = m = ml_collections.ConfigDict()
    m.name = "unet"  # unet | unet3plus | deeplabv3 (jaxseg/models/build.py: who reads what)
    m.depth = 3  # number of 2x down-samplings
    m.base_width = 16
    m.norm = "batch"  # batch | instance | none
    m.norm_position = "after"  # norm before or after the activation
    m.activation = "relu"  # relu | leaky_relu
    m.upsample = "transpose"  # transpose (2x2 stride-2 transposed conv) | bilinear (+1x1 conv)
    m.head = "softmax"  # softmax (multi-class) | sigmoid (binary, num_classes=2)
    m.init = "he"  # he | xavier
    # float32 | bfloat16: the dtype activations and convolutions are computed in; parameters,
    # optimizer state, logits and losses stay float32 (mixed precision).
    m.dtype = "float32"
    m.dropout = ml_collections.ConfigDict(dict(encoder=0.0, bottleneck=0.0, decoder=0.0))
    # unet3plus (Huang et al. 2020; also reads depth, base_width, norm, norm_position):
    m.cat_width = 64  # channels each scale contributes to a decoder stage (the paper's 64)
    m.deep_supervision = True  # side outputs of every deeper decoder stage, each with a loss
    # weight of each side output's loss against the main one's; the total is divided by
    # 1 + side_weight * depth, so the loss keeps the scale of one output's.
    m.side_weight = 1.0
    # deeplabv3 (Chen et al. 2017, ResNet-18 backbone; reads none of the U-Net fields):
    m.output_stride = 16  # 16 | 8
    # The three ASPP atrous rates; () for the paper's (6, 12, 18) at stride 16, doubled at 8.
    m.aspp_rates = ml_collections.FieldReference((), field_type=tuple)
    m.aspp_width = 256
    # A backbone weights file (.npz) written by ``jaxseg convert`` from torchvision's
    # ResNet-18 (e.g. its ImageNet weights); "" trains from scratch. Nothing is downloaded.
    m.pretrained = ""

    c.loss = lo = ml_collections.ConfigDict()
    # Named terms and their weights; the total loss is the weighted sum (losses.TERMS).
    lo.weights = ml_collections.ConfigDict({"ce": 1.0, "dice": 1.0})
    lo.params = ml_collections.ConfigDict(dict(
        focal_gamma=2.0, focal_alpha=0.25, tversky_alpha=0.3, tversky_beta=0.7,
        lam=0.5, ecn_beta=0.999, smooth=1.0))
    # wce's effective number of samples n_c: percent (the class's share of the training
    # pixels in %, as the source study; the weights differ) | pixels (raw counts, Cui et
    # al.; with beta=0.999 and 10^4+ pixels a class every weight is 1, i.e. plain CE).
    lo.ecn_counts = "percent"  # wce's n_c: percent | pixels

    c.optim = o = ml_collections.ConfigDict()
    o.name = "adamw"  # adam | adamw | sgd | rmsprop | adagrad | adamax | adadelta
    o.learning_rate = 1e-3
    o.weight_decay = 1e-4
    o.weight_decay_mode = "default"  # default | coupled (L2 in the gradient) | decoupled
    o.momentum = -1.0  # sgd, rmsprop; -1: the family's default (sgd 0.9, rmsprop 0.0)
    o.nesterov = False
    o.l1 = 0.0  # L1 penalty on the conv kernels
    o.grad_clip = 0.0  # > 0: clip by global norm
    o.b1 = 0.9  # adam, adamw, adamax
    o.b2 = 0.999
    o.eps = 1e-8
    o.rho = 0.9  # rmsprop decay, adadelta rho
    o.schedule = "constant"  # constant | step | exponential | piecewise | cosine | plateau
    o.step_every = 100  # step: epochs between drops
    o.step_factor = 0.1
    o.decay_rate = 0.97  # exponential: factor per epoch
    o.hold_epochs = 50  # piecewise: constant for this many epochs ...
    o.piece_every = 10  # ... then x piece_factor every piece_every epochs
    o.piece_factor = 0.8
    o.cosine_min = 0.0  # cosine: final fraction of the learning rate
    o.plateau_factor = 0.5
    o.plateau_patience = 5
    o.plateau_min_scale = 1e-3

    c.train = t = ml_collections.ConfigDict()
    t.epochs = 20
    # The epochs the schedule spans (cosine's length); 0: train.epochs. A refit that stops at
    # a run's best epoch keeps the run's schedule this way (jaxseg refit).
    t.schedule_epochs = 0
    t.batch_size = 16
    # auto (timed where the cohort runs) | vmap | unroll | map | sequential | chunked:
    # how replicas share a program (docs/design.md §6)
    t.strategy = "auto"
    t.chunk = 0  # strategy=chunked: replicas per call (vmap over chunks of this size)
    t.autotune_share = 0.05  # strategy=auto: at most this share of the cohort's time to decide
    t.loop = "auto"  # auto | step (a dispatch per step) | scan (one per epoch)
    t.scan_unroll = 1  # loop=scan: lax.scan unroll factor
    t.early_stopping = 0  # > 0: patience in evals on validation loss
    # Small data fractions have few, noisy early epochs: patience counted from the start
    # stops them before they have learned (why the fraction studies turned it off).
    t.early_stopping_start = 0  # evals up to this epoch never count against the patience
    # A barely trained U-Net's validation loss can rise while its Dice climbs (lr_search's
    # 1e-5 runs were stopped at epoch 11 with Dice still at its best): monitor Dice then.
    t.early_stopping_monitor = "loss"  # loss | dice | volume_dice: what the patience waits for
    # A replica whose mean training loss of an epoch exceeds this times the sum of its loss
    # weights is diverged (frozen), as a non-finite one is (0: only non-finite losses).
    t.divergence_loss = 100.0
    # Successive halving (jaxseg/engine/halving.py): rungs at min_epochs * eta^k; at each
    # the configurations (seeds and folds together) outside the top 1/eta stop.
    t.halving = h = ml_collections.ConfigDict()
    h.min_epochs = 0  # > 0: the first rung's epoch (0: no halving)
    h.eta = 3  # reduction factor: max(1, n // eta) of n configurations go on at a rung
    # Rank by each replica's best so far: "" (eval.select) | dice | dice_image | volume_dice
    # | loss.
    h.metric = ""
    # Who competes at a rung: cohort (each cohort's configurations) | grid (every
    # configuration of a `jaxseg sweep`, its cohorts paused at each rung).
    h.group = "cohort"
    t.checkpoint_every = 1  # epochs between checkpoints
    t.devices = 0  # devices the replicas are sharded over (0: all; 1: the first only)
    t.xla_options = "tuned"  # tuned (XLA options measured fastest per backend) | default (XLA's)

    c.sweep = sw = ml_collections.ConfigDict()
    sw.max_replicas = 0  # cap on replicas per cohort (0: only the memory estimate limits)
    sw.sort = "dice"  # results tables sorted by this metric (dice/iou/bf: max; loss/hd95: min)

    c.eval = e = ml_collections.ConfigDict()
    e.every = 1  # epochs between evaluations
    e.batch_size = 32
    # Picks the best epoch: dice (max, pooled) | dice_image (max) | volume_dice (max, each
    # volume's 3-D Dice averaged: volume splits) | loss (min).
    e.select = "dice"
    e.bf_tolerance = 2.0  # pixels, boundary F1 distance tolerance (bf_convention=jaxseg)
    # jaxseg (tolerance bf_tolerance px) | matlab (0.75% of the image diagonal, as MATLAB's
    # evaluateSemanticSegmentation; its MeanBFScore is the per-image bf_image).
    e.bf_convention = "jaxseg"  # jaxseg | matlab
    e.hd95 = True  # HD95 in the full metric set (host-side distance transforms)
    # best: every evaluation computes loss, Dice, IoU and accuracy (what the best epoch,
    # early stopping and halving are decided on); boundary F1, HD95 and each case's Dice
    # are computed once, for every replica's best weights | every: the full set at every
    # evaluation (their curves in history.jsonl, at about 1.5x the evaluation time).
    e.full_metrics = "best"
    return c



def field_help() -> str:
    """One line per config field with its default and the comment written beside it above.

    Used by ``--helpfull`` so that every ``--config.a.b`` override is explained.
    """
    import inspect
    import re

    aliases = {"c": "", "d": "data.", "a": "augment.", "m": "model.", "lo": "loss.",
               "o": "optim.", "t": "train.", "h": "train.halving.", "e": "eval.", "sw": "sweep."}
    lines = []
    for line in inspect.getsource(default).splitlines():
        m = re.match(r"\s+(\w+)\.(\w+) = (.+?)(?:\s+#\s*(.*))?$", line)
        if not m or m.group(1) not in aliases or "ConfigDict()" in m.group(3):
            continue
        name = aliases[m.group(1)] + m.group(2)
        lines.append(f"  --config.{name}={m.group(3)}" + (f"  ({m.group(4)})" if m.group(4)
                                                           else ""))
    return "\n".join(lines)


# Fields that say where and how a run executes, not what it computes: a workdir may be
# resumed with other values (a sweep checkpointed on N devices resumes on M; the XLA
# options change kernels, so sums round differently, not the experiment; the prepared-data
# cache may move).
EXECUTION_FIELDS = (("train", "devices"), ("train", "xla_options"), ("data", "tfds_dir"),
                    ("eval", "full_metrics"), ("train", "autotune_share"))


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested config dict as ``{"a.b.c": value}`` (what planner and guard compare)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def identity(config: ml_collections.ConfigDict | dict) -> dict:
    """What a workdir's guard compares: the config as JSON without its execution fields.

    :data:`EXECUTION_FIELDS` are left out and ``data.source_dir`` is made an absolute path
    (however it was spelt).

    Args:
      config: a config, or one as a workdir recorded it (JSON).

    Returns:
      The identity (JSON).
    """
    out = json.loads(config.to_json_best_effort() if isinstance(config, ml_collections.ConfigDict)
                     else json.dumps(config))
    for section, field in EXECUTION_FIELDS:
        out.get(section, {}).pop(field, None)
    data = out.get("data", {})
    if data.get("source_dir"):
        data["source_dir"] = os.path.abspath(os.path.expanduser(data["source_dir"]))
    return out


def without_added_defaults(recorded: dict, current: dict, defaults: dict | None = None) -> dict:
    """``current`` without the fields ``recorded`` lacks that hold jaxseg's default value.

    A workdir written by an older jaxseg records no value for a field added since; resuming
    it with that field at its default is the same run, so the guards compare without it
    (a non-default value is still a different run).

    Args:
      recorded: the identity (:func:`identity`) a workdir recorded.
      current: the identity of the config being launched.
      defaults: the identity of :func:`default` (computed when not given).

    Returns:
      ``current`` with those fields removed (a new dict).
    """
    defaults = identity(default()) if defaults is None else defaults
    out = {}
    for key, value in current.items():
        if key not in recorded:
            if key in defaults and value == defaults[key]:
                continue
            out[key] = value
        elif isinstance(value, dict) and isinstance(recorded[key], dict):
            out[key] = without_added_defaults(recorded[key], value,
                                              defaults.get(key) if isinstance(
                                                  defaults.get(key), dict) else {})
        else:
            out[key] = value
    return out


def with_added_defaults(recorded: dict) -> ml_collections.ConfigDict:
    """A recorded config (a workdir's ``run.json``, an export) with later fields filled in.

    A field added to jaxseg after the config was recorded takes its default, the value
    the run was computed with (the counterpart of :func:`without_added_defaults`); the
    loss terms are the recorded ones only.

    Args:
      recorded: the config as recorded (JSON).

    Returns:
      The config.
    """

    def fill(rec: dict, dflt: dict, path: str) -> dict:
        out = dict(rec)
        for key, value in dflt.items():
            if key not in out:
                out[key] = value
            elif isinstance(value, dict) and isinstance(out[key], dict) and \
                    f"{path}{key}" != "loss.weights":
                out[key] = fill(out[key], value, f"{path}{key}.")
        return out

    return ml_collections.ConfigDict(fill(recorded, json.loads(
        default().to_json_best_effort()), ""))


def shared_data() -> str:
    """The folder holding the real datasets: $JAXSEG_SHARED_DATA or ../shared/data."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("JAXSEG_SHARED_DATA",
                          os.path.join(here, "..", "..", "shared", "data"))


def study(arg: str | None = None, dataset: str = "cmr96") -> ml_collections.ConfigDict:
    """The common base of the catalogue studies (``experiments/``).

    Args:
      arg: ``None`` for the study as published (on ``dataset``), ``"smoke"`` for a tiny
        version on the built-in phantom (2 epochs, 32x32, base 4) used by the tests.
      dataset: ``cmr96`` (4 classes, 96x96) or ``acdc``.

    Returns:
      The config: U-Net base 16 depth 3, CE + Dice, flips, Adam 1e-3, batch 16, 50 epochs,
      early stopping after 10 evaluations without a better validation loss.
    """
    c = default()
    c.data.name = dataset
    c.data.source_dir = os.path.join(shared_data(), dataset)
    c.data.image_size = 96 if dataset == "cmr96" else 256
    c.augment.hflip = c.augment.vflip = True
    c.optim.name = "adam"
    c.optim.weight_decay = 0.0
    c.train.epochs = 50
    c.train.early_stopping = 10
    c.train.checkpoint_every = 5
    if arg == "smoke":
        c.data.name, c.data.source_dir = "phantom", ""
        c.data.phantom.size = c.data.image_size = 32
        c.data.phantom.num_train, c.data.phantom.num_val = 16, 8
        c.model.base_width, c.model.depth = 4, 2
        c.train.epochs, c.train.batch_size, c.train.checkpoint_every = 2, 8, 1
        c.eval.batch_size = 8
    elif arg not in (None, ""):
        from jaxseg.errors import JaxsegError

        raise JaxsegError(f"unknown experiment argument {arg!r}; use none or 'smoke'")
    return c


def smoke_axis(values: list, arg: str | None, keep: int = 2) -> list:
    """The first ``keep`` values of a sweep axis under ``smoke``, all of them otherwise."""
    return list(values)[:keep] if arg == "smoke" else list(values)
