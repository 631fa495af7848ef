"""Loading a prepared dataset into whole NumPy arrays, ready to live on the device.

``load(config.data)`` builds (or reuses) the TFDS builder, reads every example
through ``as_data_source`` (no TensorFlow), applies the host pre-processing and
returns :class:`SegData`: a training and a validation :class:`Split`. Volume
datasets keep, for every slice, the index of its volume so evaluation can be per
volume. ``data.folds > 0`` pools the labelled images and serves fold
``data.fold`` of a k-fold cross-validation instead of the train/val split.
"""

import copy
import dataclasses
import re

import ml_collections
import numpy as np
from absl import logging

from jaxseg.data import builders, classes, preprocess
from jaxseg.errors import JaxsegError

# A volume set without a validation split holds out this fold of its training volumes.
HOLDOUT_FOLDS = 5

# How each data.fit brings an image of another size to data.image_size, in words.
FIT_SAID = {"crop": "centre-cropped and/or zero-padded (a structure off centre may be cut; "
                    "data.fit=resize scales instead)",
            "resize": "resized (images linearly, masks by nearest neighbour)"}


@dataclasses.dataclass
class Split:
    """One split as whole arrays.

    Attributes:
      images: float32 ``(N, H, W, 1)``.
      labels: int32 ``(N, H, W)``, or None for an unlabelled split.
      ids: the example ids (file stem, or ``volume/slice``).
      volume: int32 ``(N,)``, the volume index of each slice, or None for 2-D data.
      volume_ids: the volume names, indexed by ``volume``.
      region: int32 ``(N, 4)``, where each image lies in its fitted array (``top, bottom,
        left, right``; :func:`jaxseg.data.preprocess.kept_region`), or None where every
        image fills it. Evaluation scores only these pixels: a slice smaller than
        ``image_size`` is zero-padded, and what a model predicts in the padding is not
        part of the image (``predict`` drops it the same way).
      spacing: float ``(V, 3)``, each volume's voxel size in mm ``(slice, row, col)`` at
        the fitted size (NIfTI sets), or None: HD95 per volume in mm from it.
    """

    images: np.ndarray
    labels: np.ndarray | None
    ids: list[str]
    volume: np.ndarray | None = None
    volume_ids: list[str] | None = None
    region: np.ndarray | None = None
    spacing: np.ndarray | None = None

    def __len__(self):
        return len(self.ids)

    def regions(self) -> np.ndarray:
        """int32 ``(N, 4)``: :attr:`region`, the whole array for images that fill it."""
        if self.region is not None:
            return self.region
        h, w = self.images.shape[1:3]
        return np.tile(np.array([[0, h, 0, w]], np.int32), (len(self), 1))

    def take(self, index: np.ndarray) -> "Split":
        """Returns the examples at ``index`` (volumes renumbered)."""
        labels = None if self.labels is None else self.labels[index]
        volume, volume_ids = None, None
        if self.volume is not None:
            used, volume = np.unique(self.volume[index], return_inverse=True)
            volume_ids = [self.volume_ids[u] for u in used]
        spacing = None if self.spacing is None or self.volume is None else self.spacing[used]
        return Split(self.images[index], labels, [self.ids[i] for i in index],
                     None if volume is None else volume.astype(np.int32), volume_ids,
                     None if self.region is None else self.region[index], spacing)


@dataclasses.dataclass
class SegData:
    """A dataset ready for training.

    Attributes:
      train: the training split.
      val: the validation split (model selection, early stopping).
      num_classes: classes including background.
      class_counts: float64 ``(num_classes,)`` pixel counts over the training labels (with
        k-fold cross-validation: over all pooled labelled images, so that every fold of a
        cohort shares them).
      pool: with k-fold cross-validation, the pooled labelled images (train + val).
      fold_of: with k-fold cross-validation, the fold of each pooled image.
    """

    train: Split
    val: Split
    num_classes: int
    class_counts: np.ndarray
    pool: Split | None = None
    fold_of: np.ndarray | None = None


def _natural(s: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def read_split(builder, split: str) -> tuple[list, list, list[str], list | None]:
    """Reads every example of a prepared split, in natural id order.

    Args:
      builder: a prepared jaxseg TFDS builder.
      split: the split name.

    Returns:
      ``(images, labels, ids, spacings)`` as lists (labels of unlabelled examples are size
      0); ``spacings`` holds each slice's voxel size in mm for NIfTI sets, else None.
    """
    if split not in builder.info.splits:
        raise JaxsegError(f"dataset {builder.name} has no split {split!r}; it has "
                          f"{sorted(builder.info.splits)}")
    source = builder.as_data_source(split)
    examples = [source[i] for i in range(len(source))]
    examples.sort(key=lambda e: _natural(e["id"].decode() if isinstance(e["id"], bytes)
                                         else e["id"]))
    ids = [e["id"].decode() if isinstance(e["id"], bytes) else e["id"] for e in examples]
    spacings = [e["spacing"] for e in examples] if examples and "spacing" in examples[0] \
        else None
    return [e["image"] for e in examples], [e["label"] for e in examples], ids, spacings


def to_split(images, labels, ids, cfg: ml_collections.ConfigDict,
             spacings: list | None = None) -> Split:
    """Pre-processes lists of raw images/labels into a fixed-size :class:`Split`.

    Args:
      images: 2-D float images in [0, 1], any sizes.
      labels: matching uint8 label maps (size 0 for unlabelled examples).
      ids: example ids; ``volume/slice`` ids group slices into volumes.
      cfg: the ``data`` config (``image_size``, ``scaling``, ``clahe*``).
      spacings: each image's voxel size in mm ``(slice, row, col)``, or None: kept per
        volume in :attr:`Split.spacing` (rows and columns scaled with ``data.fit=resize``).

    Returns:
      The split, every image fitted to ``image_size`` (``data.fit``: centre crop/pad or
      resize; said once per split when some images are another size).
    """
    size = int(cfg.image_size)
    out_images, out_labels, region = [], [], []
    other = [n for im, n in zip(images, ids, strict=True) if size > 0
             and im.shape != (size, size)]
    if other:
        logging.info("data: %d of %d images (%s first) are not %dx%d: %s (data.fit=%s)",
                     len(other), len(images), other[0], size, size, FIT_SAID[cfg.fit], cfg.fit)
    labelled = all(lab.size for lab in labels)
    if not labelled and any(lab.size for lab in labels):
        raise JaxsegError("a split mixes labelled and unlabelled images")
    for image, label, name in zip(images, labels, ids, strict=True):
        if size <= 0 and image.shape != images[0].shape:
            raise JaxsegError(f"image {name} is {image.shape} but {ids[0]} is "
                              f"{images[0].shape}; set data.image_size to crop/pad")
        image = preprocess.scale(image, cfg.scaling)
        if cfg.clahe:
            image = preprocess.clahe(image, cfg.clahe_clip_limit, cfg.clahe_tiles)
        if size > 0:
            region.append(preprocess.kept_region(image.shape, size, cfg.fit))
            image = preprocess.fit(image, size, cfg.fit)
            label = preprocess.fit(label, size, cfg.fit, labels=True) if labelled else label
        out_images.append(image)
        out_labels.append(label)
    split = Split(np.stack(out_images)[..., None].astype(np.float32),
                  np.stack(out_labels).astype(np.int32) if labelled else None, list(ids))
    if region and any(r != (0, size, 0, size) for r in region):  # some images are padded
        split.region = np.array(region, np.int32)
    if ids and all("/" in i for i in ids):
        vols = [i.rsplit("/", 1)[0] for i in ids]
        split.volume_ids = list(dict.fromkeys(vols))
        index = {v: k for k, v in enumerate(split.volume_ids)}
        split.volume = np.array([index[v] for v in vols], np.int32)
        if spacings is not None:
            first = {}  # a volume's slices share its voxel size: the first one's
            for i, v in enumerate(split.volume.tolist()):
                first.setdefault(v, i)
            split.spacing = np.array([_fitted_spacing(spacings[i], images[i].shape, size,
                                                      cfg.fit) for i in first.values()])
    return split


def _fitted_spacing(spacing, shape, size: int, mode: str) -> tuple[float, float, float]:
    """A slice's voxel size after :func:`jaxseg.data.preprocess.fit` (resize scales it)."""
    s = [float(x) for x in spacing]
    if size > 0 and mode == "resize":
        s[1], s[2] = s[1] * shape[0] / size, s[2] * shape[1] / size
    return tuple(s)


def builder_options(cfg: ml_collections.ConfigDict) -> dict:
    """The TFDS builder options a ``data`` config asks for."""
    options = {"num_classes": classes.source_count(cfg)}  # the masks' own classes
    if cfg.name == "phantom":
        options.update(size=int(cfg.phantom.size), seed=int(cfg.phantom.seed),
                       num_train=int(cfg.phantom.num_train), num_val=int(cfg.phantom.num_val),
                       num_test=int(cfg.phantom.num_test))
    else:
        options["source_dir"] = cfg.source_dir
    if cfg.name == "folder" and cfg.grey_levels is not None:
        options["grey_levels"] = tuple(cfg.grey_levels)
    return options


def kfold(pool: Split, folds: int, fold: int, seed: int) -> tuple[Split, Split]:
    """Splits a pool of labelled images into training and held-out fold ``fold``.

    Args:
      pool: the labelled images (whole volumes stay in one fold, and the frames of one
        patient, volumes named ``<patient>_frameNN`` as in ACDC).
      folds: the number of folds (>= 2).
      fold: which fold is held out, ``0 <= fold < folds``.
      seed: the seed of the shuffle that assigns examples to folds.

    Returns:
      ``(train, val)``.
    """
    if folds < 2 or not 0 <= fold < folds:
        raise JaxsegError(f"data.fold={fold} must satisfy 0 <= fold < data.folds={folds}, "
                          "and data.folds must be >= 2")
    is_val = fold_assignment(pool, folds, seed) == fold
    return pool.take(np.flatnonzero(~is_val)), pool.take(np.flatnonzero(is_val))


def fold_assignment(pool: Split, folds: int, seed: int) -> np.ndarray:
    """The fold of every example of a pool: shuffled groups (volumes, or images) dealt round-robin.

    Args:
      pool: the labelled images.
      folds: the number of folds.
      seed: the seed of the shuffle.

    Returns:
      int ``(N,)`` fold indices in ``[0, folds)``.
    """
    if pool.volume is not None:  # whole subjects: both frames of an ACDC patient together
        subjects = [re.sub(r"_frame\d+$", "", v) for v in pool.volume_ids]
        index = {u: k for k, u in enumerate(dict.fromkeys(subjects))}
        groups = np.array([index[subjects[v]] for v in pool.volume.tolist()])
    else:
        groups = np.arange(len(pool))
    order = np.random.default_rng(seed).permutation(np.unique(groups))
    fold_of_group = {g: i % folds for i, g in enumerate(order.tolist())}
    return np.array([fold_of_group[g] for g in groups.tolist()], np.int32)


def _prepare_once(cfg: ml_collections.ConfigDict):
    """Prepares the TFDS dataset (multi-host: process 0 first, then the others).

    Processes of one host take turns through the builder's file lock; on several hosts
    process 0 prepares and the others wait for it (a shared folder's locks may not hold).
    """
    import jax

    if jax.process_count() == 1:
        return builders.prepare(cfg.name, cfg.tfds_dir, **builder_options(cfg))
    from jax.experimental import multihost_utils

    builder = None
    if jax.process_index() == 0:
        builder = builders.prepare(cfg.name, cfg.tfds_dir, **builder_options(cfg))
    multihost_utils.sync_global_devices("jaxseg: dataset prepared")
    return builder or builders.prepare(cfg.name, cfg.tfds_dir, **builder_options(cfg))


def load(cfg: ml_collections.ConfigDict) -> SegData:
    """Prepares (if needed) and loads the dataset a ``data`` config names.

    Args:
      cfg: the ``data`` part of a jaxseg config.

    Returns:
      The :class:`SegData`.
    """
    if cfg.classes and not cfg.source_class_names:  # a data config not resolved yet
        from jaxseg import configs

        cfg = configs.resolve_data_classes(copy.deepcopy(cfg))
    builder = _prepare_once(cfg)
    images, labels, ids, spacings = read_split(builder, cfg.train_split)
    train = to_split(images, labels, ids, cfg, spacings)
    # nnU-Net's imagesTr and plain volume folders have no validation split: its volumes are
    # taken from the training ones (fold 0 of HOLDOUT_FOLDS, or data.folds' k-fold).
    hold_out = cfg.val_split not in builder.info.splits and cfg.val_split == "val" and \
        train.volume is not None
    val = None
    if not hold_out:
        images, labels, ids, spacings = read_split(builder, cfg.val_split)
        val = to_split(images, labels, ids, cfg, spacings)
    for split, name in ((train, cfg.train_split), (val, cfg.val_split)):
        if split is not None and split.labels is None:
            raise JaxsegError(f"split {name!r} of {cfg.name} has no masks; it can only be "
                              "predicted on, not trained or evaluated on")
        if split is not None:
            split.labels = classes.apply(split.labels, cfg)  # the task's classes
    if cfg.train_on_val and val is not None:  # a final model: val's images train too
        train = _concat(train, val)
    pool = fold_of = None
    if cfg.folds:
        pool = train if val is None else _concat(train, val)
        train, val = kfold(pool, int(cfg.folds), int(cfg.fold), int(cfg.fold_seed))
        fold_of = fold_assignment(pool, int(cfg.folds), int(cfg.fold_seed))
    elif hold_out:
        logging.info("data: %s has no split 'val'; fold 0 of %d of its %d training volumes "
                     "(data.fold_seed=%d) is held out for validation (data.folds=k: k-fold "
                     "cross-validation)", cfg.name, HOLDOUT_FOLDS, len(train.volume_ids),
                     int(cfg.fold_seed))
        pooled = train
        train, val = kfold(train, HOLDOUT_FOLDS, 0, int(cfg.fold_seed))
        if cfg.train_on_val:
            train = pooled
        if not len(train) or not len(val):
            raise JaxsegError(f"{cfg.name} at {cfg.source_dir}: {len(train.volume_ids or [])} + "
                              f"{len(val.volume_ids or [])} volumes are too few to hold one "
                              f"in {HOLDOUT_FOLDS} out for validation; add a val/ folder")
    counted = pool if pool is not None else train
    counts = np.bincount(counted.labels.ravel(), minlength=int(cfg.num_classes))
    return SegData(train, val, int(cfg.num_classes), counts.astype(np.float64), pool, fold_of)


def _concat(a: Split, b: Split) -> Split:
    """Concatenates two labelled splits; volumes stay volumes when both splits have them."""
    region = None
    if a.region is not None or b.region is not None:
        region = np.concatenate([a.regions(), b.regions()])
    out = Split(np.concatenate([a.images, b.images]), np.concatenate([a.labels, b.labels]),
                a.ids + b.ids, region=region)
    if a.volume is not None and b.volume is not None:  # folds then keep whole volumes
        out.volume = np.concatenate([a.volume, b.volume + len(a.volume_ids)]).astype(np.int32)
        out.volume_ids = a.volume_ids + b.volume_ids
        if a.spacing is not None and b.spacing is not None:
            out.spacing = np.concatenate([a.spacing, b.spacing])
    return out
