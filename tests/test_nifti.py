"""NIfTI data sets built from the real ACDC volumes: the nnU-Net raw layout and the official
ACDC release layout, read slice by slice with their voxel sizes; predict writes label
volumes that overlay on the input (affine, shape) with training's per-volume metrics."""

import json
import os

import numpy as np
import pytest
from conftest import shared_dir

from jaxseg import configs, model_io, predict, train, workdir
from jaxseg.data import datasets, nifti, readers
from jaxseg.errors import JaxsegError
from jaxseg.sweep import plan

nib = pytest.importorskip("nibabel")

SPACING = (10.0, 1.25, 1.5)  # (slice, row, col) mm; the affine holds them as (x, y, z)
VAL_PATIENTS = (2, 19, 82, 85)  # in the ACDC HDF5 conversion's val.list (082: 154 rows)
TRAIN_PATIENTS = (3, 4)  # in its train.list: volumes stacked from the training slices


def acdc_volume(acdc: str, patient: int, frame: int):
    """An ACDC volume (slices, rows, cols) from the HDF5 conversion."""
    name = f"patient{patient:03d}_frame{frame:02d}"
    path = os.path.join(acdc, "data", f"{name}.h5")
    if os.path.exists(path):
        return name, *readers.read_h5(path)
    paths = readers.matching(os.path.join(acdc, "data", f"{name}_slice_*.h5"))
    slices = [readers.read_h5(p) for p in paths]  # natural order: slice_2 before slice_10
    return name, np.stack([s[0] for s in slices]), np.stack([s[1] for s in slices])


def affine():
    a = np.diag([SPACING[2], SPACING[1], SPACING[0], 1.0])
    a[:3, 3] = (-120.0, 80.0, 5.0)
    return a


def save(path, vol, dtype):
    """Writes (slices, rows, cols) as NIfTI's (x, y, z)."""
    nib.save(nib.Nifti1Image(np.transpose(vol, (2, 1, 0)).astype(dtype), affine()), path)


@pytest.fixture(scope="module")
def volumes():
    acdc = shared_dir("acdc")
    return {p: [acdc_volume(acdc, p, f) for f in (1, 2)] for p in VAL_PATIENTS + TRAIN_PATIENTS}


@pytest.fixture(scope="module")
def nnunet_set(tmp_path_factory, volumes):
    root = tmp_path_factory.mktemp("Dataset027_ACDC")
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir()
    for _p, frames in volumes.items():
        for name, image, label in frames:
            # 16-bit intensities as scanners write them; one label volume stored as float.
            save(root / "imagesTr" / f"{name}_0000.nii.gz", image * 1000 + 40, np.int16)
            save(root / "labelsTr" / f"{name}.nii.gz", label,
                 np.float32 if name == "patient003_frame01" else np.uint8)
    name, image, _ = volumes[2][0]
    save(root / "imagesTs" / "unseen_0000.nii.gz", image * 1000, np.int16)
    with open(root / "dataset.json", "w") as f:
        json.dump({"channel_names": {"0": "cineMRI"}, "file_ending": ".nii.gz",
                   "labels": {"background": 0, "RV": 1, "MLV": 2, "LVC": 3},
                   "numTraining": 2 * len(volumes)}, f)
    return str(root)


def nifti_config(source, tfds_dir, name="nifti"):
    c = configs.default()
    c.data.name, c.data.source_dir, c.data.tfds_dir = name, source, tfds_dir
    c.data.image_size = 160
    c.model.base_width, c.model.depth = 4, 2
    c.train.epochs, c.train.batch_size, c.eval.batch_size = 1, 8, 8
    c.train.strategy = "sequential"
    return configs.resolve_classes(c)


def test_nnunet_layout_slices_spacing_and_held_out_volumes(nnunet_set, tfds_dir, volumes):
    c = nifti_config(nnunet_set, tfds_dir)
    assert c.data.class_names == ("background", "RV", "MLV", "LVC")  # dataset.json's
    d = datasets.load(c.data)
    # --dry_run's estimate counts the slices from the headers (a fifth held out).
    total = sum(len(f[1]) for frames in volumes.values() for f in frames)
    assert plan.split_sizes(c) == (total - total // 5, total // 5)
    # No validation split in imagesTr: fold 0 of 5 held out, whole patients (both frames).
    names = set(d.train.volume_ids) | set(d.val.volume_ids)
    assert len(names) == 12 and not set(d.train.volume_ids) & set(d.val.volume_ids)
    patients = {v[:10] for v in d.val.volume_ids}
    assert all(f"{p}_frame01" in d.val.volume_ids and f"{p}_frame02" in d.val.volume_ids
               for p in patients)
    np.testing.assert_allclose(d.val.spacing, [SPACING] * len(d.val.volume_ids))
    # Each volume scaled once from its 0.5/99.5 percentiles, then centre-cropped/padded.
    name, image, label = volumes[82][0]
    if name in d.val.volume_ids:
        split = d.val
    else:
        split = d.train
    rows = [i for i, v in enumerate(split.ids) if v.startswith(name + "/")]
    raw = (image * 1000 + 40).astype(np.int16).astype(np.float32)
    lo, hi = np.percentile(raw, [0.5, 99.5])
    want = np.clip((raw - lo) / (hi - lo), 0, 1)
    from jaxseg.data import preprocess

    np.testing.assert_allclose(split.images[rows, ..., 0], preprocess.crop_or_pad(want, 160),
                               atol=1e-6)
    np.testing.assert_array_equal(split.labels[rows], preprocess.crop_or_pad(label, 160))
    assert split.region is not None  # patient082's 154 rows are padded to 160


def test_nnunet_train_then_predict_writes_overlaying_volumes(nnunet_set, tfds_dir, tmp_path):
    c = nifti_config(nnunet_set, tfds_dir)
    # Selected and watched per volume (ACDC's protocol): each epoch's rows carry it.
    c.eval.select = c.train.early_stopping_monitor = "volume_dice"
    c.train.early_stopping = 1
    wd = str(tmp_path / "run")
    train.train_and_evaluate(c, wd)
    with open(os.path.join(wd, "summary.json")) as f:
        best = json.load(f)["replicas"][0]["best"]
    assert best["hd95_unit"] == "mm" and 0 <= best["volume_dice"] <= 1
    model = model_io.from_replica(workdir.Workdir(wd).replica("0"))
    val_ids = datasets.load(model.config.data).val.volume_ids
    folder = tmp_path / "val"
    folder.mkdir()
    for v in val_ids:
        os.symlink(os.path.join(nnunet_set, "imagesTr", f"{v}_0000.nii.gz"),
                   folder / f"{v}_0000.nii.gz")
    res = predict.run_predict(model, str(folder), str(tmp_path / "pred"),
                              masks=os.path.join(nnunet_set, "labelsTr"))
    for row in res["cases"]:  # each volume's 3-D Dice is training's own
        want = best["case_dice"][str(val_ids.index(row["case"]))]
        assert want is None or row["dice"] == pytest.approx(want, rel=1e-9), row["case"]
    # HD95 in mm from the headers, per volume, averaged as training does.
    assert res["metrics"]["hd95_unit"] == "mm"
    np.testing.assert_allclose(np.array(res["metrics"]["hd95_per_class"], float),
                               np.array(best["hd95_per_class"], float), rtol=1e-9)
    # The written label volume overlays on its input: same affine and voxel grid, and its
    # Dice against the label file, in NIfTI's own (x, y, z) axes, is the one reported.
    v = val_ids[0]
    out = nib.load(str(tmp_path / "pred" / f"{v}_pred.nii.gz"))
    inp = nib.load(os.path.join(nnunet_set, "imagesTr", f"{v}_0000.nii.gz"))
    np.testing.assert_allclose(out.affine, inp.affine)
    assert out.shape == inp.shape and out.get_data_dtype() == np.uint8
    got = np.asarray(out.dataobj)
    truth = np.asarray(nib.load(os.path.join(nnunet_set, "labelsTr", f"{v}.nii.gz")).dataobj)
    row = next(r for r in res["cases"] if r["case"] == v)
    for k in (1, 2, 3):
        p, g = got == k, truth == k
        if p.any() or g.any():
            assert row["dice_per_class"][k] == pytest.approx(
                2 * (p & g).sum() / (p.sum() + g.sum()), rel=1e-9)
    # The unlabelled test image: a label volume, no metrics.
    res = predict.run_predict(model, os.path.join(nnunet_set, "imagesTs"), str(tmp_path / "ts"))
    assert res["metrics"] is None and os.path.exists(tmp_path / "ts" / "unseen_pred.nii.gz")


def test_official_acdc_layout_splits_by_the_conversions_patients(tmp_path, tfds_dir, volumes):
    root = tmp_path / "ACDC" / "database" / "training"
    for p, frames in volumes.items():
        folder = root / f"patient{p:03d}"
        folder.mkdir(parents=True)
        (folder / "Info.cfg").write_text("ED: 1\nES: 2\nGroup: NOR\n")
        for name, image, label in frames:
            save(folder / f"{name}.nii.gz", image * 500, np.int16)
            save(folder / f"{name}_gt.nii.gz", label, np.uint8)
    source = str(tmp_path / "ACDC" / "database")
    assert nifti.layout(source) == "acdc"
    c = nifti_config(source, tfds_dir, name="acdc")
    d = datasets.load(c.data)
    assert sorted({v[:10] for v in d.val.volume_ids}) == [f"patient{p:03d}" for p in VAL_PATIENTS]
    assert sorted({i.split("/")[0][:10] for i in d.train.ids}) == ["patient003", "patient004"]
    np.testing.assert_allclose(d.val.spacing, [SPACING] * 8)
    # A few steps on it; predict on a patient's folder (its _gt files beside the frames)
    # writes label volumes on the inputs' grid with training's per-volume Dice.
    wd = str(tmp_path / "run")
    train.train_and_evaluate(c, wd)
    with open(os.path.join(wd, "summary.json")) as f:
        best = json.load(f)["replicas"][0]["best"]
    model = model_io.from_replica(workdir.Workdir(wd).replica("0"))
    res = predict.run_predict(model, str(root / "patient082"), str(tmp_path / "pred"))
    assert [r["case"] for r in res["cases"]] == ["patient082_frame01", "patient082_frame02"]
    for row in res["cases"]:
        want = best["case_dice"][str(d.val.volume_ids.index(row["case"]))]
        assert want is None or row["dice"] == pytest.approx(want, rel=1e-9), row["case"]
        out = nib.load(str(tmp_path / "pred" / f"{row['case']}_pred.nii.gz"))
        inp = nib.load(str(root / "patient082" / f"{row['case']}.nii.gz"))
        assert out.shape == inp.shape and np.allclose(out.affine, inp.affine)
    assert res["metrics"]["hd95_unit"] == "mm"
    # A quoted pattern that also matches the _gt files: those are truth, not inputs.
    cases = predict.gather_inputs(str(root / "patient082" / "*.nii.gz"), None, model.config)
    assert [c.name for c in cases] == ["patient082_frame01", "patient082_frame02"]
    assert all(c.labels is not None for c in cases)
    # k-fold over train + val keeps each patient's two frames in one fold.
    c.data.folds = 3
    d = datasets.load(c.data)
    subjects = {}
    for v, f in zip(d.pool.volume, d.fold_of, strict=True):
        subjects.setdefault(d.pool.volume_ids[v][:10], set()).add(int(f))
    assert len(subjects) == 6 and all(len(f) == 1 for f in subjects.values())


def test_bad_nifti_names_the_file(tmp_path, tfds_dir, volumes):
    name, image, label = volumes[3][0]
    root = tmp_path / "plain"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    save(root / "images" / "a.nii.gz", image, np.float32)
    save(root / "labels" / "a_gt.nii.gz", label[:, :-1], np.uint8)  # one column short
    with pytest.raises(JaxsegError, match=r"labels/a_gt.nii.gz is .* but its image"):
        datasets.load(nifti_config(str(root), tfds_dir).data)
    bad = label.copy()
    bad[0, 0, 0] = 7
    save(root / "labels" / "a_gt.nii.gz", bad, np.uint8)
    with pytest.raises(JaxsegError, match=r"a_gt.nii.gz holds labels \[7\]"):
        datasets.load(nifti_config(str(root), tfds_dir).data)
    (root / "images" / "b.nii.gz").write_bytes(b"not a nifti file")
    with pytest.raises(JaxsegError, match="unreadable NIfTI file .*b.nii.gz"):
        nifti.read(str(root / "images" / "b.nii.gz"))


def test_paired_tree_of_cine_volumes_as_mms_stores_them(tmp_path, tfds_dir, volumes):
    """M&Ms' layout: Training/Labeled/<id>/<id>_sa.nii.gz, a 4-D cine (x, y, z, time) with
    <id>_sa_gt.nii.gz labelling two of its frames; Validation/<id>/... the same."""
    def subject(split, sid, p):
        (ed, ed_img, ed_lab), (es, es_img, es_lab) = volumes[p]
        folder = tmp_path / "MnM" / split / sid
        folder.mkdir(parents=True)
        cine = np.stack([ed_img, es_img, ed_img], -1)  # (S, H, W, T): a third, unlabelled frame
        labels = np.stack([ed_lab, es_lab, np.zeros_like(ed_lab)], -1)
        for arr, suffix, dtype in ((cine * 900, "", np.int16), (labels, "_gt", np.uint8)):
            nib.save(nib.Nifti1Image(np.transpose(arr, (2, 1, 0, 3)).astype(dtype), affine()),
                     folder / f"{sid}_sa{suffix}.nii.gz")
        return folder / f"{sid}_sa.nii.gz"

    for sid, p in (("A1", 3), ("B2", 4), ("C3", 19)):
        subject("Training/Labeled", sid, p)
    cine = subject("Validation", "D4", 2)
    source = str(tmp_path / "MnM")
    assert nifti.layout(source) == "paired"
    d = datasets.load(nifti_config(source, tfds_dir).data)
    # Each labelled frame is a volume; the unlabelled third frame is left out.
    assert d.val.volume_ids == ["D4_sa_frame00", "D4_sa_frame01"]
    assert sorted(set(i.split("/")[0] for i in d.train.ids)) == [
        f"{s}_sa_frame0{t}" for s in ("A1", "B2", "C3") for t in (0, 1)]
    np.testing.assert_allclose(d.val.spacing, [SPACING] * 2)
    first = [i for i, v in enumerate(d.val.volume) if v == 0]
    from jaxseg.data import preprocess

    np.testing.assert_array_equal(d.val.labels[first],
                                  preprocess.crop_or_pad(volumes[2][0][2], 160))
    # predict on the cine file finds its _gt beside it: the two labelled frames, each
    # written as a 3-D volume on the input's grid.
    cases = predict.gather_inputs(str(cine.parent), None,
                                  nifti_config(source, tfds_dir))
    assert [c.name for c in cases] == ["D4_sa_frame00", "D4_sa_frame01"]
    assert all(c.labels is not None for c in cases)
    labels = np.zeros(volumes[2][0][2].shape, np.uint8)
    nifti.write_label(str(tmp_path / "f.nii.gz"), labels, cases[1].volume)
    out = nib.load(str(tmp_path / "f.nii.gz"))
    assert out.shape == nib.load(str(cine)).shape[:3]
    np.testing.assert_allclose(out.affine, affine())
