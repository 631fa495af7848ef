"""Segmenting new images with a trained model: ``jaxseg predict``.

The model is a replica of a workdir or an exported folder (:mod:`jaxseg.model_io`). Inputs
are a PNG, an HDF5 file with an ``image`` dataset (a slice or a volume ``(S, H, W)``), a NIfTI
volume (:mod:`jaxseg.data.nifti`), a folder of any of them, or a glob pattern of them. Each
image goes through the pre-processing the model was trained with (scaling, CLAHE, crop/pad
to ``data.image_size``); the predicted labels are put back at the input's size (pixels
outside a centre crop are background). Outputs per input: a label mask PNG (class indices,
or the dataset's grey levels for ``folder`` data) of the input's size, a colour overlay PNG
(:mod:`jaxseg.drawing`), for HDF5 inputs an HDF5 file with the predicted ``label`` volume,
and for NIfTI inputs ``<name>_pred.nii.gz`` with the input's affine and header (it overlays
on the input in ITK-SNAP or 3D Slicer). When masks are given (``--masks``, a ``label``
dataset in the HDF5 file, or a NIfTI ``_gt`` volume beside the input) the metrics of
:mod:`jaxseg.metrics` are computed at the input's size, printed and saved (HD95 in mm from a
NIfTI header); over several volumes also the per-volume means, as the engine's evaluation of
a volume split reports them (``volume_dice``: each volume's 3-D Dice per class, averaged over
the volumes, then over the foreground classes; HD95 per volume, averaged).
"""

import dataclasses
import os
import re

import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxseg import drawing, metrics, model_io, models, outputs
from jaxseg.data import classes, nifti, preprocess, readers
from jaxseg.errors import JaxsegError


@dataclasses.dataclass
class Case:
    """One input to segment: a PNG image, an HDF5 or NIfTI slice/volume (slices on axis 0)."""

    name: str
    images: np.ndarray  # (S, H, W) float in [0, 1]; S = 1 for a PNG
    labels: np.ndarray | None  # (S, H, W) uint8, or None
    kind: str  # png | h5 | nifti
    volume: nifti.Volume | None = None  # a NIfTI input as read (its affine and header)


def _read_nifti(path: str, masks: str | None, num_classes: int) -> list[Case]:
    """A NIfTI volume (a 4-D one: its frames) scaled as in training, with true labels if found."""
    label_path = nifti.find_label_for(path, masks)
    if masks and label_path is None:
        raise JaxsegError(f"image {path} has no label volume in {masks} (looked for <name>"
                          f"{{{','.join(nifti.LABEL_SUFFIXES)}}}.nii[.gz], nnU-Net's _0000 "
                          "dropped)")
    name = re.sub(r"_0000$", "", nifti.stem(path))  # nnU-Net's channel suffix
    return [Case(n, image, labels, "nifti", volume) for n, volume, image, labels in
            nifti.case_volumes(name, path, label_path, num_classes)]


def _read_image(path: str) -> np.ndarray:
    """A grey PNG (or DICOM slice) as float [0, 1]; colour PNGs must be grey in all channels."""
    from PIL import Image

    if readers.is_dicom(path):
        return readers.read_image(path)
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
    return readers.read_image(path)


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
    """The cases of ``--input`` with their masks, if given.

    Args:
      inp: a PNG, HDF5 or NIfTI file, a folder of PNGs (or, without PNGs, of ``.h5``, or
        else ``.nii.gz``/``.nii`` files), or a glob pattern of such files
        (``'data/patient*_frame??.h5'``: quote it).
      masks: a mask PNG (for one input PNG) or a folder of masks (``<stem>_mask.png`` or
        ``<stem>.png``); every image then needs its mask. Ignored for HDF5 (its ``label``).
        For NIfTI a label volume or a folder of them (:func:`jaxseg.data.nifti.
        find_label_for`); without it, ``<name>_gt.nii.gz`` beside the input is used.
      config: the model's config (classes, grey levels).

    Returns:
      The cases, in natural name order.
    """
    num_classes = classes.source_count(config.data)  # the masks' own classes (data.classes)
    grey = config.data.grey_levels if config.data.name == "folder" else None
    if any(ch in inp for ch in "*?[") and not os.path.exists(inp):
        # Label volumes beside NIfTI images (<name>_gt) are truth, not inputs.
        paths = [p for p in readers.matching(inp) if not nifti.is_label_file(p)]
        if not paths:
            raise JaxsegError(f"no files match {inp}")
    elif os.path.isdir(inp):
        # PNG slices, or else HDF5 files (a folder of volumes)
        paths = readers.image_files(inp) or readers.matching(os.path.join(inp, "*.h5")) or [
            p for p in nifti.files(inp) if not nifti.is_label_file(p)]
        if not paths:
            raise JaxsegError(f"no PNG, DICOM (.dcm), HDF5 (.h5) or NIfTI (.nii.gz, .nii) "
                              f"images in {inp}")
    elif os.path.exists(inp):
        paths = [inp]
    else:
        raise JaxsegError(f"input not found: {inp}")
    cases = []
    for path in paths:
        if path.endswith((".h5", ".hdf5")):
            cases.append(_read_h5(path, num_classes))
            continue
        if nifti.is_nifti(path):
            cases += _read_nifti(path, masks, num_classes)
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
    for case in cases:  # true masks in the model's classes (data.classes)
        case.labels = classes.apply(case.labels, config.data)
    return cases


def _prepare(image: np.ndarray, config) -> np.ndarray:
    """The training pre-processing of one 2-D image."""
    d = config.data
    image = preprocess.scale(image, d.scaling)
    if d.clahe:
        image = preprocess.clahe(image, d.clahe_clip_limit, d.clahe_tiles)
    if int(d.image_size) > 0:
        image = preprocess.fit(image, int(d.image_size), d.fit)
    return image


def _check_sizes(cases: list[Case], config) -> None:
    """Refuses sizes the model cannot take; says once how many inputs are fitted, and how."""
    step = models.size_multiple(config.model)
    size = int(config.data.image_size)
    other = []
    for case in cases:
        h, w = case.images.shape[1:]
        if size <= 0 and (h % step or w % step):
            raise JaxsegError(f"image {case.name} is {w}x{h}; this model "
                              f"({models.describe(config.model)}, data.image_size=0) needs "
                              f"sides divisible by {step}")
        if size > 0 and (h, w) != (size, size):
            other.append(case.name)
    if other:
        how = ("centre-cropped and/or padded; predicted pixels outside the crop are "
               "background" if config.data.fit == "crop" else
               "resized, and their predictions resized back (nearest neighbour)")
        logging.warning("%d of %d input(s) (%s first) are not the model's %dx%d: %s "
                        "(data.fit=%s, as in training)", len(other), len(cases), other[0],
                        size, size, how, config.data.fit)


def case_metrics(pred: np.ndarray, labels: np.ndarray, config, spacing=None) -> dict:
    """Dice/IoU/BF/accuracy (and HD95) of one case, as in the engine's evaluation.

    Args:
      pred: ``(S, H, W)`` predicted labels.
      labels: ``(S, H, W)`` true labels.
      config: the model's config (classes, BF tolerance, ``data.spacing``).
      spacing: the case's own voxel size in mm (a NIfTI header's), used where
        ``data.spacing`` is not given.

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
    given, unit = metrics.hd95_spacing(config.data.spacing, volume is not None)
    if given is None and spacing is not None:
        given, unit = (tuple(spacing) if volume is not None else tuple(spacing)[1:]), "mm"
    per_case = metrics.hd95_per_case(pred, labels, k, volume, given)
    return sums, per_case, {**sums.compute(), **metrics.summarize_hd95(per_case, unit)}


def run_predict(model: model_io.Model, inp: str, out_dir: str,
                masks: str | None = None) -> dict:
    """Segments every input and writes masks, overlays and (with masks) metrics.

    Args:
      model: the model.
      inp: the input (see :func:`gather_inputs`).
      out_dir: where the outputs go (created).
      masks: true masks for PNG inputs (see :func:`gather_inputs`).

    Returns:
      ``{"model": the model's provenance, "input": the input's path, "cases": one row per
      case (its size and, with masks, its metrics), "metrics": the metrics over every case
      (with ``volume_dice``, ``volume_dice_per_class`` when volumes were given) or None}``,
      also written to ``predictions.json`` (the metrics alone to ``metrics.json``).
    """
    config = model.config
    cases = gather_inputs(inp, masks, config)
    os.makedirs(out_dir, exist_ok=True)
    # Written masks hold the data's grey levels for a folder set (class indices once
    # data.classes has remapped the classes).
    grey = config.data.grey_levels if config.data.name == "folder" and not config.data.classes \
        else None
    lut = np.array(grey if grey else range(model.num_classes), np.uint8)
    colours = drawing.class_colours(config.data.class_names)
    rows, total, per_case_hd, volume_dice = [], None, [], []
    _check_sizes(cases, config)
    for case in cases:
        prepared = np.stack([_prepare(im, config) for im in case.images])
        pred = model.segment(prepared)
        pred = np.stack([preprocess.fit(p, im.shape, config.data.fit, labels=True)
                         for p, im in zip(pred, case.images, strict=True)])
        shown = np.stack([preprocess.scale(im, config.data.scaling) for im in case.images])
        if case.kind == "png":
            names = [case.name]
        else:
            if case.kind == "nifti":  # overlays on the input in ITK-SNAP / 3D Slicer
                nifti.write_label(os.path.join(out_dir, f"{case.name}_pred.nii.gz"),
                                  lut[pred], case.volume)
            else:
                import h5py

                with h5py.File(os.path.join(out_dir, f"{case.name}_pred.h5"), "w") as f:
                    f.create_dataset("label", data=pred, compression="gzip")
            names = [f"{case.name}_{z:03d}" for z in range(len(pred))]
        for name, p, im in zip(names, pred, shown, strict=True):
            drawing.save_png(os.path.join(out_dir, f"{name}_pred.png"), lut[p])
            drawing.save_png(os.path.join(out_dir, f"{name}_overlay.png"),
                             drawing.overlay(im, p, colours=colours))
        row = {"case": case.name, "slices": len(pred), "height": pred.shape[1],
               "width": pred.shape[2]}
        if case.labels is not None:
            sums, per_case, m = case_metrics(
                pred, case.labels, config, None if case.volume is None else case.volume.spacing)
            total = sums if total is None else total.merge(sums)
            per_case_hd.append(per_case)
            row.update({key: m[key] for key in ("dice", "iou", "bf", "dice_image", "hd95_per_class",
                                                "hd95", "hd95_missed", "hd95_unit")})
            row["dice_per_class"] = m["dice_per_class"]
            if case.kind != "png" and len(pred) > 1:
                volume_dice.append(m["dice_per_class"])
        rows.append(row)
    overall = None
    if total is not None:
        overall = {**total.compute(), **metrics.summarize_hd95(
            np.concatenate(per_case_hd), m["hd95_unit"])}
        if volume_dice:  # the engine's per-volume mean (metrics.SegSums.compute)
            overall["volume_dice_per_class"] = metrics.nanmean(np.stack(volume_dice), axis=0)
            overall["volume_dice"] = float(metrics.nanmean(
                overall["volume_dice_per_class"][1:]))
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
    volumes = ""
    if m.get("volume_dice") is not None:
        per_vol = ", ".join(f"{n} {d:.4f}" for n, d in zip(
            names, m["volume_dice_per_class"][1:], strict=False) if d is not None)
        volumes = f", {f('volume_dice')} per volume ({per_vol})"
    return (f"{len(result['cases'])} case(s): mean foreground Dice {f('dice')} pooled over "
            f"pixels ({per}), {f('dice_image')} per image{volumes}; IoU {f('iou')}; "
            f"BF {f('bf')}; HD95 {f('hd95', 2)} {m.get('hd95_unit', 'px')}{missed}")

