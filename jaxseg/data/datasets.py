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
    """

    images: np.ndarray
    labels: np.ndarray | None
    ids: list[str]
    volume: np.ndarray | None = None
    volume_ids: list[str] | None = None

    def __len__(self):
        return len(self.ids)

    def take(self, index: np.ndarray) -> "Split":
        """Returns the examples at ``index`` (volumes renumbered)."""
        labels = None if self.labels is None else self.labels[index]
        volume, volume_ids = None, None
        if self.volume is not None:
            used, volume = np.unique(self.volume[index], return_inverse=True)
            volume_ids = [self.volume_ids[u] for u in used]
        return Split(self.images[index], labels, [self.ids[i] for i in index],
                     None if volume is None else volume.astype(np.int32), volume_ids)


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


def read_split(builder, split: str) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Reads every example of a prepared split, in natural id order.

    Args:
      builder: a prepared jaxseg TFDS builder.
      split: the split name.

    Returns:
      ``(images, labels, ids)`` as lists (labels of unlabelled examples are size 0).
    """
    if split not in builder.info.splits:
        raise JaxsegError(f"dataset {builder.name} has no split {split!r}; it has "
                          f"{sorted(builder.info.splits)}")
    source = builder.as_data_source(split)
    examples = [source[i] for i in range(len(source))]
    examples.sort(key=lambda e: _natural(e["id"].decode() if isinstance(e["id"], bytes)
                                         else e["id"]))
    ids = [e["id"].decode() if isinstance(e["id"], bytes) else e["id"] for e in examples]
    return [e["image"] for e in examples], [e["label"] for e in examples], ids


def to_split(images, labels, ids, cfg: ml_collections.ConfigDict) -> Split:
    """Pre-processes lists of raw images/labels into a fixed-size :class:`Split`.

    Args:
      images: 2-D float images in [0, 1], any sizes.
      labels: matching uint8 label maps (size 0 for unlabelled examples).
      ids: example ids; ``volume/slice`` ids group slices into volumes.
      cfg: the ``data`` config (``image_size``, ``scaling``, ``clahe*``).

    Returns:
      The split, every image fitted to ``image_size`` (``data.fit``: centre crop/pad or
      resize; said once per split when some images are another size).
    """
    size = int(cfg.image_size)
    out_images, out_labels = [], []
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
            image = preprocess.fit(image, size, cfg.fit)
            label = preprocess.fit(label, size, cfg.fit, labels=True) if labelled else label
        out_images.append(image)
        out_labels.append(label)
    split = Split(np.stack(out_images)[..., None].astype(np.float32),
                  np.stack(out_labels).astype(np.int32) if labelled else None, list(ids))
    if ids and all("/" in i for i in ids):
        vols = [i.rsplit("/", 1)[0] for i in ids]
        split.volume_ids = list(dict.fromkeys(vols))
        index = {v: k for k, v in enumerate(split.volume_ids)}
        split.volume = np.array([index[v] for v in vols], np.int32)
    return split


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
      pool: the labelled images (whole volumes stay in one fold).
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
    groups = pool.volume if pool.volume is not None else np.arange(len(pool))
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
    train = to_split(*read_split(builder, cfg.train_split), cfg)
    val = to_split(*read_split(builder, cfg.val_split), cfg)
    for split, name in ((train, cfg.train_split), (val, cfg.val_split)):
        if split.labels is None:
            raise JaxsegError(f"split {name!r} of {cfg.name} has no masks; it can only be "
                              "predicted on, not trained or evaluated on")
        split.labels = classes.apply(split.labels, cfg)  # the task's classes (data.classes)
    pool = fold_of = None
    if cfg.folds:
        pool = _concat(train, val)
        train, val = kfold(pool, int(cfg.folds), int(cfg.fold), int(cfg.fold_seed))
        fold_of = fold_assignment(pool, int(cfg.folds), int(cfg.fold_seed))
    counted = pool if pool is not None else train
    counts = np.bincount(counted.labels.ravel(), minlength=int(cfg.num_classes))
    return SegData(train, val, int(cfg.num_classes), counts.astype(np.float64), pool, fold_of)


def _concat(a: Split, b: Split) -> Split:
    """Concatenates two labelled 2-D splits (volume membership is dropped)."""
    return Split(np.concatenate([a.images, b.images]), np.concatenate([a.labels, b.labels]),
                 a.ids + b.ids)
