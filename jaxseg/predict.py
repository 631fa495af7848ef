"""Segmenting new images with a trained replica: ``jaxseg predict`` and exported models.

A model is either a replica of a workdir (``--workdir=DIR --replica=ID``, its best weights by
default) or a folder written by ``jaxseg inspect --export=PATH``: an orbax checkpoint of the
replica's weights (``variables/``) beside its resolved config (``config.json``) and where it
came from (``export.json``), loadable without the sweep.

Inputs are a PNG, a folder of PNGs, or an HDF5 file with an ``image`` dataset (a slice or a
volume ``(S, H, W)``). Each image goes through the pre-processing the model was trained with
(scaling, CLAHE, crop/pad to ``data.image_size``); the predicted labels are put back at the
input's size (pixels outside a centre crop are background). Outputs per input: a label mask
PNG (class indices, or the dataset's grey levels for ``folder`` data) of the input's size, a
colour overlay PNG, and for HDF5 inputs an HDF5 file with the predicted ``label`` volume.
When masks are given (``--masks``, or a ``label`` dataset in the HDF5 file) the metrics of
:mod:`jaxseg.metrics` are computed at the input's size, printed and saved.
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
from absl import logging

from jaxseg import configs, losses, metrics, outputs, replicas
from jaxseg import workdir as workdir_lib
from jaxseg.data import preprocess, readers
from jaxseg.errors import JaxsegError
from jaxseg.models import create_model

# Overlay colours per class (class 0, background, is not drawn): RV red, MYO green, LV blue.
COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230]], np.uint8)
# A structure keeps its colour whatever its index: a 3-class LGE-style set (bg, MYO, blood)
# draws the myocardium green as the 4-class sets do, not in the RV's red.
NAMED = {"rv": 1, "myo": 2, "lv": 3, "blood": 3, "scar": 4}


def class_colours(class_names) -> np.ndarray:
    """The overlay colour of each class, by name where the structure is known.

    Args:
      class_names: the dataset's class names, background first.

    Returns:
      uint8 ``(len(class_names), 3)``: RV red, MYO green, LV (or blood pool) blue, scar
      orange; other classes take the unused colours of :data:`COLOURS` in order.
    """
    picks = [NAMED.get(str(n).lower()) for n in class_names]
    picks[0] = 0
    spare = iter(i for i in range(1, len(COLOURS)) if i not in picks)
    return COLOURS[[p if p is not None else next(spare, 1) for p in picks]]


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
    variables, _, host, step = workdir_lib.restore_replica(rep, which)
    epoch = host["best_epoch"][rep.index] if which == "best" else host["epoch"]
    meta = {"cohort_dir": rep.cohort_dir, "replica": rep.id, "cohort": rep.cohort,
            "index": rep.index, "run": rep.run, "overrides": rep.overrides, "weights": which,
            "epoch": epoch, "checkpoint_step": step,
            "val_metrics": host["best_metrics"][rep.index] if which == "best"
            else host["last_metrics"][rep.index]}
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
        ck.save(os.path.join(path, "variables"), model.variables)
    with open(os.path.join(path, "config.json"), "w") as f:
        f.write(model.config.to_json_best_effort(indent=1))
    outputs.write_json(os.path.join(path, "export.json"), model.meta)
    return path


def from_export(path: str) -> Model:
    """Loads a folder written by :func:`export`."""
    path = os.path.abspath(path)
    if not os.path.exists(os.path.join(path, "export.json")):
        raise JaxsegError(f"{path} is not an exported jaxseg model (no export.json); export "
                          "one with `jaxseg inspect --workdir=DIR --replica=ID --export=PATH`")
    with open(os.path.join(path, "config.json")) as f:
        config = configs.with_added_defaults(json.load(f))
    with open(os.path.join(path, "export.json")) as f:
        meta = json.load(f)
    with ocp.StandardCheckpointer() as ck:
        variables = ck.restore(os.path.join(path, "variables"))
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


@dataclasses.dataclass
class Case:
    """One input to segment: a PNG image or an HDF5 slice/volume (slices on axis 0)."""

    name: str
    images: np.ndarray  # (S, H, W) float in [0, 1]; S = 1 for a PNG
    labels: np.ndarray | None  # (S, H, W) uint8, or None
    kind: str  # png | h5


def _read_image(path: str) -> np.ndarray:
    """A grey PNG as float [0, 1]; colour images must be grey in all channels."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            bands = im.getbands()
            arr = np.asarray(im.convert("RGB")) if len(bands) > 1 else None
    except FileNotFoundError:
        raise JaxsegError(f"image file not found: {path}") from None
    except OSError as e:
        raise JaxsegError(f"unreadable image {path}: {e}") from None
    if arr is not None and not (np.array_equal(arr[..., 0], arr[..., 1])
                                and np.array_equal(arr[..., 0], arr[..., 2])):
        raise JaxsegError(f"image {path} has {len(bands)} colour channels ({''.join(bands)}) "
                          "with different values; the model takes 1 grey channel")
    return readers.image_to_unit(readers.read_png(path))


def _read_h5(path: str, num_classes: int) -> Case:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "image" not in f:
                raise JaxsegError(f"HDF5 file {path} has no 'image' dataset")
            image = np.asarray(f["image"])
            label = np.asarray(f["label"]) if "label" in f else None
    except (FileNotFoundError, OSError) as e:
        raise JaxsegError(f"unreadable HDF5 file {path}: {e}") from None
    if image.ndim not in (2, 3):
        raise JaxsegError(f"HDF5 file {path}: image has shape {image.shape}; expected a grey "
                          "slice (H, W) or volume (S, H, W) with 1 channel")
    image = readers.image_to_unit(image)
    if image.ndim == 2:
        image = image[None]
        label = None if label is None else label[None]
    if label is not None:
        if label.shape != image.shape:
            raise JaxsegError(f"HDF5 file {path}: label shape {label.shape} != image shape "
                              f"{image.shape}")
        label = readers.labels_from_grey(label, None, path, num_classes)
    name = os.path.splitext(os.path.basename(path))[0]
    return Case(name, image, label, "h5")


def gather_inputs(inp: str, masks: str | None, config) -> list[Case]:
    """The cases of ``--input`` (PNG, folder of PNGs, or HDF5) with their masks, if given.

    Args:
      inp: the input path.
      masks: a mask PNG (for one input PNG) or a folder of masks (``<stem>_mask.png`` or
        ``<stem>.png``); every image then needs its mask. Ignored for HDF5 (its ``label``).
      config: the model's config (classes, grey levels).

    Returns:
      The cases, in natural name order.
    """
    num_classes = int(config.data.num_classes)
    grey = config.data.grey_levels if config.data.name == "folder" else None
    if os.path.isdir(inp):
        paths = readers.png_files(inp)
        if not paths:
            raise JaxsegError(f"no PNG images in {inp}")
    elif os.path.exists(inp):
        paths = [inp]
    else:
        raise JaxsegError(f"input not found: {inp}")
    cases = []
    for path in paths:
        if path.endswith((".h5", ".hdf5")):
            cases.append(_read_h5(path, num_classes))
            continue
        image = _read_image(path)
        label = None
        if masks:
            mask_path = masks if os.path.isfile(masks) else readers.find_mask(masks, path)
            if mask_path is None:
                raise JaxsegError(f"image {path} has no mask in {masks} (looked for "
                                  "<name>_mask.png and <name>.png)")
            label = readers.read_mask(mask_path, num_classes, grey, image.shape, path)[None]
        name = os.path.splitext(os.path.basename(path))[0]
        cases.append(Case(name, image[None], label, "png"))
    return cases


def _prepare(image: np.ndarray, config) -> np.ndarray:
    """The training pre-processing of one 2-D image."""
    d = config.data
    image = preprocess.scale(image, d.scaling)
    if d.clahe:
        image = preprocess.clahe(image, d.clahe_clip_limit, d.clahe_tiles)
    if int(d.image_size) > 0:
        image = preprocess.crop_or_pad(image, int(d.image_size))
    return image


def _check_size(case: Case, config) -> None:
    step = 2 ** int(config.model.depth)
    h, w = case.images.shape[1:]
    size = int(config.data.image_size)
    if size <= 0 and (h % step or w % step):
        raise JaxsegError(f"image {case.name} is {w}x{h}; this model (depth "
                          f"{config.model.depth}, data.image_size=0) needs sides divisible by "
                          f"{step}")
    if size > 0 and (h > size or w > size):
        logging.warning("image %s is %dx%d, larger than the model's %dx%d input: it is "
                        "centre-cropped and pixels outside are labelled background", case.name,
                        w, h, size, size)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45,
            colours: np.ndarray = COLOURS) -> np.ndarray:
    """An RGB picture of a grey image with its labels in colour.

    Args:
      image: ``(H, W)`` float in [0, 1].
      labels: ``(H, W)`` class indices.
      alpha: the opacity of the colours.
      colours: uint8 ``(C, 3)``, one colour per class (:func:`class_colours`).

    Returns:
      uint8 ``(H, W, 3)``.
    """
    grey = np.repeat((np.clip(image, 0, 1) * 255)[..., None], 3, -1)
    colour = colours[labels % len(colours)].astype(np.float32)
    a = np.where(labels[..., None] > 0, alpha, 0.0)
    return (grey * (1 - a) + colour * a).round().astype(np.uint8)


def case_metrics(pred: np.ndarray, labels: np.ndarray, config) -> dict:
    """Dice/IoU/BF/accuracy (and HD95) of one case, as in the engine's evaluation.

    Args:
      pred: ``(S, H, W)`` predicted labels.
      labels: ``(S, H, W)`` true labels.
      config: the model's config (classes, BF tolerance).

    Returns:
      ``(counts, per_case_hd95, row)``: the :class:`jaxseg.metrics.SegSums` (to merge over
      cases), the HD95 per case and class (:func:`jaxseg.metrics.hd95_per_case`, to pool
      over cases) and the case's metrics with its HD95 (per volume for a volume, per image
      for an image).
    """
    k = int(config.data.num_classes)
    sums = metrics.SegSums.from_model_output(
        pred=jnp.asarray(pred, jnp.int32), labels=jnp.asarray(labels, jnp.int32),
        valid=jnp.ones(len(pred), jnp.float32), num_classes=k,
        tolerance=metrics.bf_tolerance(config.eval.bf_convention, config.eval.bf_tolerance,
                                       pred.shape[1:3]))
    volume = np.zeros(len(pred), np.int32) if len(pred) > 1 else None
    spacing, unit = metrics.hd95_spacing(config.data.spacing, volume is not None)
    per_case = metrics.hd95_per_case(pred, labels, k, volume, spacing)
    return sums, per_case, {**sums.compute(), **metrics.summarize_hd95(per_case, unit)}


def _save_png(path: str, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def run_predict(model: Model, inp: str, out_dir: str, masks: str | None = None) -> dict:
    """Segments every input and writes masks, overlays and (with masks) metrics.

    Args:
      model: the model.
      inp: a PNG, a folder of PNGs, or an HDF5 file.
      out_dir: where the outputs go (created).
      masks: true masks for PNG inputs (see :func:`gather_inputs`).

    Returns:
      ``{"cases": [...], "metrics": overall metrics or None}`` (also ``metrics.json``).
    """
    config = model.config
    cases = gather_inputs(inp, masks, config)
    os.makedirs(out_dir, exist_ok=True)
    grey = config.data.grey_levels if config.data.name == "folder" else None
    lut = np.array(grey if grey else range(model.num_classes), np.uint8)
    colours = class_colours(config.data.class_names)
    rows, total, per_case_hd = [], None, []
    for case in cases:
        _check_size(case, config)
        prepared = np.stack([_prepare(im, config) for im in case.images])
        pred = model.segment(prepared)
        pred = np.stack([preprocess.crop_or_pad(p, im.shape) for p, im in
                         zip(pred, case.images, strict=True)])
        shown = np.stack([preprocess.scale(im, config.data.scaling) for im in case.images])
        if case.kind == "png":
            _save_png(os.path.join(out_dir, f"{case.name}_pred.png"), lut[pred[0]])
            _save_png(os.path.join(out_dir, f"{case.name}_overlay.png"),
                      overlay(shown[0], pred[0], colours=colours))
        else:
            import h5py

            with h5py.File(os.path.join(out_dir, f"{case.name}_pred.h5"), "w") as f:
                f.create_dataset("label", data=pred, compression="gzip")
            for z in range(len(pred)):
                _save_png(os.path.join(out_dir, f"{case.name}_{z:03d}_pred.png"), lut[pred[z]])
                _save_png(os.path.join(out_dir, f"{case.name}_{z:03d}_overlay.png"),
                          overlay(shown[z], pred[z], colours=colours))
        row = {"case": case.name, "slices": len(pred), "height": pred.shape[1],
               "width": pred.shape[2]}
        if case.labels is not None:
            sums, per_case, m = case_metrics(pred, case.labels, config)
            total = sums if total is None else total.merge(sums)
            per_case_hd.append(per_case)
            row.update({key: m[key] for key in ("dice", "iou", "bf", "dice_image",
                                                "hd95", "hd95_missed", "hd95_unit")})
            row["dice_per_class"] = m["dice_per_class"]
        rows.append(row)
    overall = None
    if total is not None:
        overall = {**total.compute(), **metrics.summarize_hd95(
            np.concatenate(per_case_hd), m["hd95_unit"])}
    result = outputs.jsonable({"model": model.meta, "input": os.path.abspath(inp),
                               "cases": rows, "metrics": overall})
    outputs.write_json(os.path.join(out_dir, "predictions.json"), result)
    if overall is not None:
        outputs.write_json(os.path.join(out_dir, "metrics.json"), result["metrics"])
    return result


def format_metrics(result: dict, class_names) -> str:
    """The overall metrics of :func:`run_predict` as a few readable lines."""
    m = result["metrics"]
    if m is None:
        return f"{len(result['cases'])} case(s) segmented (no masks given: no metrics)"
    names = list(class_names)[1:]
    per = ", ".join(f"{n} {d:.4f}" for n, d in zip(names, m["dice_per_class"][1:],
                                                     strict=False) if d is not None)

    def f(key, digits=4):
        return "n/a" if m.get(key) is None else f"{m[key]:.{digits}f}"

    missed = f", {m['hd95_missed']} case(s) with a class in one mask only" \
        if m.get("hd95_missed") else ""
    return (f"{len(result['cases'])} case(s): mean foreground Dice {f('dice')} pooled over "
            f"pixels ({per}), {f('dice_image')} per image; IoU {f('iou')}; BF {f('bf')}; "
            f"HD95 {f('hd95', 2)} {m.get('hd95_unit', 'px')}{missed}")

