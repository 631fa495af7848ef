"""TensorFlow-datasets builders for every dataset jaxseg reads, usable without TensorFlow.

The builders write ``array_record`` files whose features are zlib-encoded
``tfds.features.Tensor`` values and are read back with ``as_data_source()``:
that path needs no TensorFlow (docs/design.md §6). Images are stored as float32 in [0, 1]
at their original size; pre-processing (CLAHE, crop/pad) happens when the data
is loaded, so changing it never forces a rebuild.

Builders (TFDS names in brackets):

* ``phantom`` [jaxseg_phantom]: synthetic short-axis slices (:mod:`jaxseg.data.phantom`).
* ``cmr96`` [jaxseg_cmr96]: ``train/``, ``val/`` with masks, ``test/`` without.
* ``acdc`` [jaxseg_acdc]: the SSL4MIS HDF5 layout; ``train`` holds slices, ``val``
  (and ``test`` when present) hold whole volumes with their slice order.
* ``folder`` [jaxseg_folder]: a user's ``images/`` (PNG, or DICOM slices) + ``masks/`` PNGs
  with a grey-level to class mapping; ``train/``, ``val/``, ``test/`` sub-folders become splits.
* ``nifti`` [jaxseg_nifti]: NIfTI volumes (:mod:`jaxseg.data.nifti`: nnU-Net's raw layout,
  plain image/label folders) as slices with their volume's voxel size; ``acdc`` pointed at
  the official NIfTI release reads through it too.

Each builder config carries its source folder, a fingerprint of the folder's contents
(:func:`jaxseg.data.readers.fingerprint`: names, sizes, modification times) and its options;
its name includes a hash of them, so two folders never share a cache and an edited folder
is prepared again. Two processes preparing the same set at once take turns (a file lock);
the second finds it prepared.
"""

import dataclasses
import fcntl
import hashlib
import os

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from jaxseg.data import nifti, phantom, readers
from jaxseg.errors import JaxsegError

# 1.1.0 (2026-12-01): integer images wider than 8 bits are scaled per image from their
# percentiles (readers.image_to_unit), no longer by 65535; 8-bit data prepare as in 1.0.0.
_VERSION = tfds.core.Version("1.1.0")
tfds.disable_progress_bar()  # jaxseg reports its own progress; TFDS bars garble logs


def _features(volume: bool, spacing: bool = False) -> tfds.features.FeaturesDict:
    shape = (None, None, None) if volume else (None, None)
    features = {
        "image": tfds.features.Tensor(shape=shape, dtype=np.float32, encoding="zlib"),
        # Unlabelled examples store a mask of size 0 so it can never pass for truth.
        "label": tfds.features.Tensor(shape=shape, dtype=np.uint8, encoding="zlib"),
        "id": tfds.features.Text(),
    }
    if spacing:  # the voxel size in mm (slice, row, col) of the slice's volume
        features["spacing"] = tfds.features.Tensor(shape=(3,), dtype=np.float32)
    return tfds.features.FeaturesDict(features)


@dataclasses.dataclass(eq=False)
class SegConfig(tfds.core.BuilderConfig):
    """Options shared by the jaxseg builders.

    Attributes:
      source_dir: the folder the raw files are read from (unused by ``phantom``).
      num_classes: the number of declared classes, background included.
      grey_levels: for ``folder``: the grey value of each class in the mask PNGs.
      size: for ``phantom``: the image side.
      seed: for ``phantom``: the seed of the generator.
      num_train: for ``phantom``: training images.
      num_val: for ``phantom``: validation images.
      num_test: for ``phantom``: test images.
      fingerprint: the source folder's content digest (a new one: a new cache).
    """

    source_dir: str = ""
    num_classes: int = 4
    grey_levels: tuple[int, ...] | None = None
    size: int = 96
    seed: int = 0
    num_train: int = 160
    num_val: int = 40
    num_test: int = 40
    fingerprint: str = ""


def make_config(**options) -> SegConfig:
    """Builds a SegConfig whose name hashes its options (one cache per source and options)."""
    if options.get("source_dir"):
        options["source_dir"] = os.path.abspath(os.path.expanduser(options["source_dir"]))
    if options.get("grey_levels") is not None:
        options["grey_levels"] = tuple(int(g) for g in options["grey_levels"])
    key = repr(sorted(options.items())).encode()
    name = "c" + hashlib.sha1(key).hexdigest()[:12]
    return SegConfig(name=name, version=_VERSION, **options)


class JaxsegPhantom(tfds.core.GeneratorBasedBuilder):
    """Synthetic cardiac short-axis slices, deterministic from a seed."""

    VERSION = _VERSION
    BUILDER_CONFIGS = [make_config()]

    def _info(self):
        return self.dataset_info_from_configs(features=_features(volume=False))

    def _split_generators(self, dl_manager):
        c = self.builder_config
        counts = {"train": c.num_train, "val": c.num_val, "test": c.num_test}
        # Each split has its own seed stream so resizing one split leaves the others alone.
        return {split: self._generate_examples(c.seed * 1000 + i, n, c.size)
                for i, (split, n) in enumerate(counts.items()) if n > 0}

    def _generate_examples(self, seed, count, size):
        for i, (image, label) in enumerate(phantom.phantom_split(seed, count, size)):
            yield i, {"image": image, "label": label, "id": f"phantom{i:05d}"}


def _png_examples(image_dir: str, mask_dir: str | None, num_classes: int, grey_levels,
                  require_masks: bool):
    """Yields (key, example) for every PNG (or DICOM) image in image_dir, with its mask."""
    images = readers.image_files(image_dir)
    if not images:
        raise JaxsegError(f"no PNG or DICOM (.dcm) images in {image_dir}")
    said = False  # the wide-image scaling is said once per folder
    for path in images:
        dicom = readers.is_dicom(path)
        raw = readers.read_dicom(path) if dicom else readers.read_png(path)
        if (dicom or raw.dtype != np.uint8) and not said:
            said = True
            logging.info("%s: %s images (%s first) are scaled per image from their %s "
                         "percentiles to [0, 1], not by their type's range", image_dir,
                         "DICOM" if dicom else raw.dtype, os.path.basename(path),
                         readers.WIDE_PERCENTILES)
        mask_path = readers.find_mask(mask_dir, path) if mask_dir else None
        if mask_path is None:
            if require_masks:
                raise JaxsegError(f"image {path} has no mask in {mask_dir} (looked for "
                                  f"<name>_mask.png and <name>.png)")
            label = np.zeros((0, 0), np.uint8)
        else:
            label = readers.read_mask(mask_path, num_classes, grey_levels, raw.shape, path)
        stem = os.path.splitext(os.path.basename(path))[0]
        yield stem, {"image": readers.to_unit(raw, dicom), "label": label, "id": stem}


class JaxsegCmr96(tfds.core.GeneratorBasedBuilder):
    """The 96x96 ACDC-derived teaching set: ``{train,val}/{image,mask}``, ``test/image``."""

    VERSION = _VERSION
    BUILDER_CONFIGS = [make_config(source_dir="../shared/data/cmr96")]

    def _info(self):
        return self.dataset_info_from_configs(features=_features(volume=False))

    def _split_generators(self, dl_manager):
        root = readers.require_dir(self.builder_config.source_dir, "cmr96")
        splits = {}
        for split in ("train", "val", "test"):
            image_dir = os.path.join(root, split, "image")
            if not os.path.isdir(image_dir):
                if split == "train":
                    readers.require_dir(image_dir, "cmr96 training images")
                continue
            mask_dir = os.path.join(root, split, "mask")
            labelled = os.path.isdir(mask_dir)
            splits[split] = _png_examples(image_dir, mask_dir if labelled else None,
                                          self.builder_config.num_classes, None,
                                          require_masks=labelled)
        return splits

    def _generate_examples(self):  # the generators come from _split_generators
        raise NotImplementedError


class JaxsegFolder(tfds.core.GeneratorBasedBuilder):
    """A user's PNGs: ``[split/]images/*.png`` and ``[split/]masks/*.png`` (grey-level masks)."""

    VERSION = _VERSION
    BUILDER_CONFIGS = [make_config(source_dir=".", num_classes=3, grey_levels=(0, 128, 255))]

    def _info(self):
        return self.dataset_info_from_configs(features=_features(volume=False))

    def _split_generators(self, dl_manager):
        c = self.builder_config
        root = readers.require_dir(c.source_dir, "folder dataset")
        if c.grey_levels is not None and len(c.grey_levels) != c.num_classes:
            raise JaxsegError(f"folder dataset: grey_levels {list(c.grey_levels)} name "
                              f"{len(c.grey_levels)} classes but num_classes={c.num_classes}")
        return {split: _png_examples(images, masks, c.num_classes, c.grey_levels,
                                     require_masks=masks is not None)
                for split, images, masks in readers.split_folders(root, "images", "masks",
                                                                  "folder dataset")}

    def _generate_examples(self):
        raise NotImplementedError


def _read_list(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


class JaxsegAcdc(tfds.core.GeneratorBasedBuilder):
    """ACDC in the SSL4MIS HDF5 layout: training slices; validation/test whole volumes."""

    VERSION = _VERSION
    BUILDER_CONFIGS = [make_config(source_dir="../shared/data/acdc")]

    def _info(self):
        return self.dataset_info_from_configs(features=_features(volume=False))

    def _split_generators(self, dl_manager):
        root = readers.require_dir(self.builder_config.source_dir, "acdc")
        data = readers.require_dir(os.path.join(root, "data"), "acdc HDF5 files")
        splits = {}
        list_path = os.path.join(root, "train_slices.list")
        if not os.path.exists(list_path):
            raise JaxsegError(f"acdc: {list_path} not found (SSL4MIS layout expected)")
        splits["train"] = self._examples(data, _read_list(list_path))
        for split in ("val", "test"):
            p = os.path.join(root, f"{split}.list")
            if os.path.exists(p):
                names = _read_list(p)
                missing = [n for n in names if not os.path.exists(os.path.join(data, n + ".h5"))]
                if missing and split == "test" and len(missing) == len(names):
                    continue  # the test volumes are often withheld; the list alone is no split
                splits[split] = self._examples(data, names)
        return splits

    def _examples(self, data_dir, names):
        for name in names:
            image, label = readers.read_h5(os.path.join(data_dir, name + ".h5"),
                                           self.builder_config.num_classes)
            if image.ndim == 3:
                # A volume is stored as consecutive slice examples keyed by volume and
                # slice index, so slice order and volume identity survive (the features
                # of all splits must agree, and per-slice storage keeps loading uniform).
                for z in range(image.shape[0]):
                    yield f"{name}/{z:03d}", {"image": image[z], "label": label[z],
                                              "id": f"{name}/{z:03d}"}
            else:
                yield name, {"image": image, "label": label, "id": name}

    def _generate_examples(self):
        raise NotImplementedError


class JaxsegNifti(tfds.core.GeneratorBasedBuilder):
    """NIfTI volumes (nnU-Net raw, official ACDC, plain folders) as slices with voxel sizes.

    :mod:`jaxseg.data.nifti` reads the layouts; each slice is keyed ``<case>/<slice>``.
    """

    VERSION = _VERSION
    BUILDER_CONFIGS = [make_config(source_dir=".")]

    def _info(self):
        return self.dataset_info_from_configs(features=_features(volume=False, spacing=True))

    def _split_generators(self, dl_manager):
        return {split: self._examples(found)
                for split, found in nifti.cases(self.builder_config.source_dir).items()}

    def _examples(self, found):
        for case, image_path, label_path in found:
            for name, volume, image, label in nifti.case_volumes(
                    case, image_path, label_path, self.builder_config.num_classes):
                spacing = np.asarray(volume.spacing, np.float32)
                for z in range(image.shape[0]):
                    key = f"{name}/{z:03d}"
                    yield key, {"image": image[z], "id": key, "spacing": spacing, "label":
                                np.zeros((0, 0), np.uint8) if label is None else label[z]}

    def _generate_examples(self):
        raise NotImplementedError


BUILDERS = {
    "phantom": JaxsegPhantom,
    "cmr96": JaxsegCmr96,
    "acdc": JaxsegAcdc,
    "folder": JaxsegFolder,
    "nifti": JaxsegNifti,
}


def builder_class(name: str, source_dir: str = ""):
    """The builder of data set ``name``; ``acdc`` in the official NIfTI release reads as NIfTI."""
    if name not in BUILDERS:
        raise JaxsegError(f"unknown dataset {name!r}; choose one of {sorted(BUILDERS)}")
    if name == "acdc" and source_dir and os.path.isdir(source_dir) and not os.path.isdir(
            os.path.join(source_dir, "data")) and nifti.layout(source_dir) == "acdc":
        return JaxsegNifti
    return BUILDERS[name]


def prepare(name: str, tfds_dir: str, **options) -> tfds.core.DatasetBuilder:
    """Builds (once; later calls reuse the cache) and returns a jaxseg TFDS builder.

    Args:
      name: one of ``BUILDERS``.
      tfds_dir: where TFDS keeps prepared datasets.
      **options: fields of :class:`SegConfig` (``source_dir``, ``grey_levels``, ...).

    Returns:
      The prepared builder; read it with ``builder.as_data_source(split)``.
    """
    cls = builder_class(name, options.get("source_dir", ""))
    if name != "phantom" and not options.get("source_dir"):
        raise JaxsegError(f"dataset {name!r} needs data.source_dir (see README.md, "
                          "'Your own data')")
    if options.get("source_dir"):
        readers.require_dir(options["source_dir"], name)
        options["fingerprint"] = readers.fingerprint(
            os.path.abspath(os.path.expanduser(options["source_dir"])))
    data_dir = os.path.expanduser(tfds_dir)
    config = make_config(**options)
    builder = cls(config=config, data_dir=data_dir, file_format="array_record")
    # TFDS writes into a temporary folder and renames it: two processes preparing one set
    # would collide on the rename (FileExistsError). The second waits, then finds it done.
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, f".jaxseg_{name}_{config.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            builder.download_and_prepare()
        except (OSError, RuntimeError) as e:  # array_record reports a full disk as RuntimeError
            raise JaxsegError(f"cannot prepare data set {name!r} in {data_dir} "
                              f"({' '.join(str(e).split())[:300]}); make room or fix the "
                              "folder, then run the same command again") from e
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return builder
