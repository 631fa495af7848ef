"""jaxseg's metrics and losses against medpy, MONAI and PyTorch on real masks.

Cases are built from the real data beside the project (``../shared/data``): the 20 cmr96
validation masks and the 20 ACDC validation volumes, each compared with itself and with
perturbed copies (shifted, eroded, dilated, noisy boundary, a class emptied, moved so that
it is cut by the image edge, the first slice of a volume dropped). For every case and
foreground class present in both masks:

* Dice (2-D per image, 3-D per volume): jaxseg's ``SegSums`` against ``medpy.metric.dc``
  and MONAI's ``compute_dice``.
* HD95: ``jaxseg.metrics.hd95`` against ``medpy.metric.hd95`` (the same definition) and
  MONAI's ``compute_hausdorff_distance(percentile=95)`` (the larger of the two directed
  95th percentiles, so >= medpy's), in pixels and, for volumes, with an anisotropic voxel
  spacing (10 x 1.5 x 1.5 mm; the HDF5 conversion keeps no spacing, so this one is
  assumed, to exercise the slice axis).

Losses on random and extreme (|z| = 30) logits, values and gradients: CE and sigmoid BCE
against PyTorch (``cross_entropy``, ``binary_cross_entropy_with_logits``), soft Dice and
Tversky against MONAI's ``DiceLoss``/``TverskyLoss`` at matched settings (softmax,
background excluded, sums over the batch, smoothing 1).

Command (from the repository root, with the ``bench`` extra installed):
  python benchmarks/metrics_crosscheck.py --out=docs/metrics_crosscheck.json

It writes the JSON and a Markdown summary beside it (``.md``).
"""

import glob
import json
import os
import platform
import sys
import time

import h5py
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from PIL import Image
from scipy import ndimage

from jaxseg import losses, metrics

flags.DEFINE_string("out", None, "Write the results as JSON here (and Markdown beside it).")
flags.DEFINE_string("data", os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                         "data"), "The shared data folder.")
flags.DEFINE_integer("limit", 0, "Only the first N masks and volumes of each set (0: all).")
FLAGS = flags.FLAGS
K = 4
SPACING_3D = (10.0, 1.5, 1.5)


def perturbations(mask: np.ndarray, rng) -> dict:
    """Perturbed copies of a label map (2-D image or 3-D volume, slices on axis 0)."""
    ax = (-2, -1)
    out = {"identity": mask.copy(), "shift2": np.roll(mask, 2, axis=-1)}
    out["shift_diag"] = np.roll(mask, (1, 3), axis=ax)
    fg = mask > 0
    out["eroded"] = np.where(ndimage.binary_erosion(fg, iterations=1), mask, 0)
    grown = ndimage.grey_dilation(mask, size=(1,) * (mask.ndim - 2) + (3, 3))
    out["dilated"] = np.where(mask > 0, mask, grown)
    edge = fg ^ ndimage.binary_erosion(fg)
    out["noisy_edge"] = np.where(edge & (rng.random(mask.shape) < 0.3), 0, mask)
    out["rv_emptied"] = np.where(mask == 1, 0, mask)
    if mask.ndim == 3:
        out["first_slice_dropped"] = np.concatenate([np.zeros_like(mask[:1]), mask[1:]])
    return out


def cut_by_edge(mask: np.ndarray) -> np.ndarray:
    """The label map moved so that the image's left edge cuts the heart in half."""
    cols = np.flatnonzero((mask > 0).reshape(-1, mask.shape[-1]).any(0))
    return np.roll(mask, -int(cols[0] + (cols[-1] - cols[0]) // 2), axis=-1) if cols.size \
        else mask


def cmr96_masks(root):
    files = sorted(glob.glob(os.path.join(root, "cmr96", "val", "mask", "*.png")))
    return [(os.path.basename(f), np.asarray(Image.open(f)).astype(np.int32)) for f in files]


def acdc_volumes(root):
    with open(os.path.join(root, "acdc", "val.list")) as f:
        names = [n.strip() for n in f if n.strip()]
    out = []
    for n in names:
        with h5py.File(os.path.join(root, "acdc", "data", f"{n}.h5")) as h:
            out.append((n, np.asarray(h["label"], np.int32)))
    return out


def jaxseg_dice(pred, true):
    """Per-class Dice of one case by jaxseg's counts (3-D: one volume of slices)."""
    p = pred if pred.ndim == 3 else pred[None]
    t = true if true.ndim == 3 else true[None]
    s = metrics.SegSums.from_model_output(pred=jnp.asarray(p), labels=jnp.asarray(t),
                                          valid=jnp.ones(len(p)), num_classes=K)
    return s.compute()["dice_per_class"]


def compare_case(name, kind, pred, true, spacing=None):
    """Rows (one per foreground class present in both masks) of one case."""
    import torch
    from medpy.metric import binary
    from monai.metrics import compute_dice, compute_hausdorff_distance

    rows = []
    jd = jaxseg_dice(pred, true)
    onehot = lambda x: torch.nn.functional.one_hot(  # noqa: E731
        torch.as_tensor(x, dtype=torch.long), K).movedim(-1, 0)[None]
    m_dice = compute_dice(onehot(pred), onehot(true), include_background=True,
                          ignore_empty=True)[0].numpy()
    m_hd = compute_hausdorff_distance(onehot(pred), onehot(true), include_background=True,
                                      percentile=95, spacing=spacing)[0].numpy()
    for c in range(1, K):
        p, t = pred == c, true == c
        if not p.any() or not t.any():
            continue
        rows.append({
            "case": name, "kind": kind, "class": c, "spacing": spacing,
            "touches_edge": bool(t[..., 0, :].any() or t[..., -1, :].any()
                                 or t[..., :, 0].any() or t[..., :, -1].any()
                                 or (t.ndim == 3 and (t[0].any() or t[-1].any()))),
            "dice_jaxseg": float(jd[c]), "dice_medpy": float(binary.dc(p, t)),
            "dice_monai": float(m_dice[c]),
            "hd95_jaxseg": metrics.hd95(p, t, spacing),
            "hd95_medpy": float(binary.hd95(p, t, voxelspacing=spacing)),
            "hd95_monai": float(m_hd[c])})
    return rows


def metric_rows(root):
    rng = np.random.default_rng(0)
    rows = []
    n = FLAGS.limit or None
    # Each cmr96 truth as it is and cut by the image edge (a structure the edge crosses).
    for name, mask in cmr96_masks(root)[:n]:
        for truth in (mask, cut_by_edge(mask)):
            for kind, pred in perturbations(truth, rng).items():
                rows += compare_case(name, kind, pred, truth)
    # ACDC's hearts already reach the first or last slice in most volumes (the table's
    # "touching edge" column): no cut copy.
    for name, vol in acdc_volumes(root)[:n]:
        for kind, pred in perturbations(vol, rng).items():
            rows += compare_case(name, kind, pred, vol)
            rows += compare_case(name, kind, pred, vol, SPACING_3D)
    return rows


def loss_rows():
    """Values and gradients of the loss terms against PyTorch / MONAI."""
    import torch
    from monai.losses import DiceLoss, TverskyLoss

    rng = np.random.default_rng(1)
    out = []
    for scale in (1.0, 30.0):
        z = (rng.standard_normal((2, 16, 16, K)) * scale).astype(np.float32)
        y = rng.integers(0, K, (2, 16, 16))
        params = {"smooth": 1.0, "tversky_alpha": 0.3, "tversky_beta": 0.7}

        def ours(name, z_, y_=y, head="softmax", k=K):
            f = lambda x: losses.term_values(x, jnp.asarray(y_), params, (name,),  # noqa
                                             head=head, num_classes=k)[name]
            v, g = jax.value_and_grad(f)(jnp.asarray(z_))
            return float(v), np.asarray(g)

        zt = torch.tensor(z).permute(0, 3, 1, 2).requires_grad_(True)
        yt = torch.as_tensor(y)
        common = dict(include_background=False, softmax=True, batch=True, to_onehot_y=True,
                      smooth_nr=1.0, smooth_dr=1.0)
        refs = {"ce": lambda x, t: torch.nn.functional.cross_entropy(x, t),
                "dice": lambda x, t: DiceLoss(**common)(x, t[:, None]),  # noqa: B023
                "tversky": lambda x, t: TverskyLoss(alpha=0.3, beta=0.7, **common)(  # noqa: B023
                    x, t[:, None])}
        for name, ref in refs.items():
            zt.grad = None
            r = ref(zt, yt)
            r.backward()
            v, g = ours(name, z)
            gr = zt.grad.permute(0, 2, 3, 1).numpy()
            out.append({"term": name, "logit_scale": scale, "jaxseg": v, "reference": float(r),
                        "abs_diff": abs(v - float(r)), "grad_max_abs": float(np.abs(gr).max()),
                        "grad_max_abs_diff": float(np.abs(g - gr).max())})
        # Sigmoid head: BCE (= CE) against binary_cross_entropy_with_logits.
        zs = z[..., :1]
        ys = (y > 0).astype(np.int32)
        zst = torch.tensor(zs[..., 0]).requires_grad_(True)
        r = torch.nn.functional.binary_cross_entropy_with_logits(
            zst, torch.as_tensor(ys, dtype=torch.float32))
        r.backward()
        v, g = ours("bce", zs, ys, "sigmoid", 2)
        out.append({"term": "bce (sigmoid)", "logit_scale": scale, "jaxseg": v,
                    "reference": float(r), "abs_diff": abs(v - float(r)),
                    "grad_max_abs": float(np.abs(zst.grad.numpy()).max()),
                    "grad_max_abs_diff": float(np.abs(g[..., 0] - zst.grad.numpy()).max())})
    return out


def summarize(rows):
    """Agreement per data kind: max |jaxseg - medpy| and how MONAI's HD95 compares."""
    out = []
    for kind in ("cmr96", "acdc", "acdc_mm"):
        sel = [r for r in rows if (r["spacing"] is not None) == (kind == "acdc_mm")
               and (r["case"].endswith(".png")) == (kind == "cmr96")]
        if not sel:
            continue
        d = lambda a, b, sel=sel: max(abs(r[a] - r[b]) for r in sel)  # noqa: E731
        out.append({
            "data": kind, "pairs": len(sel),
            "touching_edge": sum(r["touches_edge"] for r in sel),
            "dice_max_diff_medpy": d("dice_jaxseg", "dice_medpy"),
            "dice_max_diff_monai": d("dice_jaxseg", "dice_monai"),
            "hd95_max_diff_medpy": d("hd95_jaxseg", "hd95_medpy"),
            "hd95_monai_ge_medpy": all(r["hd95_monai"] >= r["hd95_medpy"] - 1e-4 for r in sel),
            "hd95_monai_max_excess": max(r["hd95_monai"] - r["hd95_medpy"] for r in sel),
            "hd95_monai_differs": sum(abs(r["hd95_monai"] - r["hd95_medpy"]) > 1e-4
                                      for r in sel)})
    return out


def differing(rows):
    """The pairs where any reference differs from jaxseg or MONAI's HD95 from medpy's."""
    return [r for r in rows if abs(r["hd95_monai"] - r["hd95_medpy"]) > 1e-4
            or abs(r["hd95_jaxseg"] - r["hd95_medpy"]) > 1e-9
            or abs(r["dice_jaxseg"] - r["dice_medpy"]) > 1e-9]


def markdown(result) -> str:
    env = result["environment"]
    lines = ["# Metrics and losses cross-checked against medpy, MONAI and PyTorch", "",
             f"Command: `{result['command']}`; {env['date']}; {env['machine']}, "
             f"{env['cpus']} CPU cores; "
             f"jax {env['jax']}, medpy {env['medpy']}, MONAI {env['monai']}, "
             f"torch {env['torch']}.", "",
             "Per case and foreground class present in both masks (cmr96: the 20 validation "
             "masks x 7 perturbations, per image; ACDC: the 20 validation volumes x 8 "
             "perturbations, per volume, in voxels and with an assumed 10 x 1.5 x 1.5 mm "
             "spacing); each cmr96 truth as it is and moved so that the image edge cuts the "
             "heart. "
             "`touching edge`: pairs whose true structure reaches the image or volume edge "
             "(the first or last slice included).", "",
             "| data | pairs | touching edge | Dice vs medpy | Dice vs MONAI | "
             "HD95 vs medpy | MONAI HD95 >= medpy | MONAI's excess (max) | "
             "pairs where MONAI differs |", "|---|---|---|---|---|---|---|---|---|"]
    for s in result["summary"]:
        lines.append(f"| {s['data']} | {s['pairs']} | {s['touching_edge']} | "
                     f"{s['dice_max_diff_medpy']:.2e} | {s['dice_max_diff_monai']:.2e} | "
                     f"{s['hd95_max_diff_medpy']:.2e} | {s['hd95_monai_ge_medpy']} | "
                     f"{s['hd95_monai_max_excess']:.3f} | {s['hd95_monai_differs']} |")
    lines += ["", "Maximum absolute differences. MONAI's HD95 is the larger of the two "
              "directed 95th percentiles; medpy's and jaxseg's pool both directions, so "
              "MONAI's is the larger one except where the linear interpolation of a discrete "
              "percentile falls the other way (then by a few hundredths of a pixel). "
              "`cases` in the JSON lists every pair where MONAI's HD95 differs from medpy's.",
              "", "## Losses (value and gradient)", "",
              "| term | logit scale | jaxseg | reference | abs diff | largest gradient | "
              "grad max abs diff |", "|---|---|---|---|---|---|---|"]
    for r in result["losses"]:
        lines.append(f"| {r['term']} | {r['logit_scale']:g} | {r['jaxseg']:.6f} | "
                     f"{r['reference']:.6f} | {r['abs_diff']:.1e} | {r['grad_max_abs']:.1e} | "
                     f"{r['grad_max_abs_diff']:.1e} |")
    lines += ["", "References: CE `torch.nn.functional.cross_entropy`; Dice `monai.losses."
              "DiceLoss(include_background=False, softmax=True, batch=True, smooth_nr=1, "
              "smooth_dr=1)`; Tversky `monai.losses.TverskyLoss(alpha=0.3, beta=0.7, same "
              "settings)`; sigmoid BCE `torch.nn.functional."
              "binary_cross_entropy_with_logits`."]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    import medpy
    import monai
    import torch

    t0 = time.time()
    rows = metric_rows(FLAGS.data)
    result = {
        "command": "python " + " ".join(["benchmarks/metrics_crosscheck.py"] + sys.argv[1:]),
        "environment": {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
                        "cpus": os.cpu_count(), "jax": jax.__version__,
                        "medpy": getattr(medpy, "__version__", "0.5.2"),
                        "monai": monai.__version__, "torch": torch.__version__},
        "summary": summarize(rows), "losses": loss_rows(), "cases": differing(rows),
        "seconds": time.time() - t0}
    print(markdown(result))
    if FLAGS.out:
        with open(FLAGS.out, "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.splitext(FLAGS.out)[0] + ".md", "w") as f:
            f.write(markdown(result))


if __name__ == "__main__":
    app.run(main)
