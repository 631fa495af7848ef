"""`jaxseg inspect`, `predict` and `report` on a real cmr96 sweep (tiny U-Nets, 3 epochs).

The sweep is `experiments/l2_fraction.py:smoke` moved onto cmr96: 4 runs (2 weight decays x 2
data fractions) in one cohort. Exported replicas and `predict` must reproduce the sweep's own
evaluation exactly (same masks, same metrics).
"""

import html.parser
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import shared_dir
from PIL import Image

from jaxseg import drawing, model_io, predict, train, workdir
from jaxseg.data import datasets
from jaxseg.errors import JaxsegError
from jaxseg.sweep import expand

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def cli(args, tfds_dir, xla_cache):
    # Commands other than sweep take the TFDS folder from the workdir's recorded config.
    return subprocess.run([sys.executable, "-m", "jaxseg.main", *args,
                           f"--compilation_cache={xla_cache}"], cwd=ROOT, capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tfds_dir, xla_cache):
    cmr96 = shared_dir("cmr96")
    wd = str(tmp_path_factory.mktemp("cmr96_sweep"))
    out = cli(["sweep", f"--config={ROOT}/experiments/l2_fraction.py:smoke", f"--workdir={wd}",
               "--config.data.name=cmr96", f"--config.data.source_dir={cmr96}",
               "--config.data.image_size=96", "--config.train.epochs=3",
               f"--config.data.tfds_dir={tfds_dir}"], tfds_dir, xla_cache)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(wd, "results.json")) as f:
        return wd, cmr96, json.load(f)["runs"]


def test_inspect_lists_every_replica_and_details_one(sweep, tfds_dir, xla_cache):
    wd, _, runs = sweep
    out = cli(["inspect", f"--workdir={wd}"], tfds_dir, xla_cache)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "c000: finished, 4 replica(s), checkpoint steps [2, 3]" in out.stdout
    table = out.stdout.split("\n\n", 1)[1].splitlines()[2:]
    assert [line.split()[0] for line in table] == ["0", "1", "2", "3"]
    assert all("finished" in line and "3/3" in line for line in table)
    best = max(runs, key=lambda r: r["dice"])
    out = cli(["inspect", f"--workdir={wd}", f"--replica={best['run']}"], tfds_dir, xla_cache)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"best epoch {best['best_epoch']}" in out.stdout
    assert "learning rate used in epoch 3: 0.0010" in out.stdout  # Adam 1e-3, constant
    assert "reduce-on-plateau scale 1.0000" in out.stdout
    assert "Total:" in out.stdout and "L2 norm" in out.stdout  # clu overview, layer norms
    resolved = json.loads(out.stdout.split("resolved config:\n", 1)[1])
    assert resolved["optim"]["weight_decay"] == best["optim.weight_decay"]
    assert resolved["data"]["fraction"] == best["data.fraction"]


def test_export_and_predict_reproduce_the_sweeps_evaluation(sweep, tmp_path, tfds_dir,
                                                            xla_cache):
    wd, cmr96, runs = sweep
    run = max(runs, key=lambda r: r["dice"])
    export = str(tmp_path / "model")
    out = cli(["inspect", f"--workdir={wd}", f"--replica={run['run']}", f"--export={export}"],
              tfds_dir, xla_cache)
    assert out.returncode == 0, out.stderr[-2000:]
    pred_dir = str(tmp_path / "pred")
    out = cli(["predict", f"--model={export}", f"--input={cmr96}/val/image",
               f"--masks={cmr96}/val/mask", f"--output={pred_dir}"], tfds_dir, xla_cache)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "20 case(s): mean foreground Dice" in out.stdout
    with open(os.path.join(pred_dir, "metrics.json")) as f:
        got = json.load(f)
    # The sweep's own evaluation at the replica's best epoch (results.json) ...
    assert got["dice"] == pytest.approx(run["dice"], rel=1e-9)
    for name, value in zip(("RV", "MYO", "LV"), got["dice_per_class"][1:], strict=True):
        assert value == pytest.approx(run[f"dice_{name}"], rel=1e-9)
    for key in ("iou", "bf", "hd95", "hd95_missed", "accuracy"):
        assert got[key] == pytest.approx(run[key], rel=1e-9), key
    # Per-image means are float32 sums, merged in another order here (one image at a time).
    for key in ("dice_image", "bf_image"):
        assert got[key] == pytest.approx(run[key], rel=1e-6), key
    assert "per image" in out.stdout and "HD95" in out.stdout and " px" in out.stdout
    # ... and the same masks as the replica loaded from the workdir on the TFDS val split.
    rep = workdir.Workdir(wd).replica(str(run["run"]))
    model = model_io.from_replica(rep)
    val = datasets.load(model.config.data).val
    own = model.segment(val.images)
    for i, case in enumerate(val.ids):
        png = np.asarray(Image.open(os.path.join(pred_dir, f"{case}_pred.png")))
        np.testing.assert_array_equal(png, own[i], err_msg=case)
    assert os.path.exists(os.path.join(pred_dir, f"{val.ids[0]}_overlay.png"))
    # Each image's Dice as predict scores it is the one the paired per-image test of the
    # results tables uses (case_dice, keyed by the image's index in the val split).
    with open(os.path.join(pred_dir, "predictions.json")) as f:
        by_case = {c["case"]: c["dice"] for c in json.load(f)["cases"]}
    for i, case in enumerate(val.ids):
        want = run["case_dice"][str(i)]
        assert (by_case[case] is None) == (want is None), case
        assert want is None or by_case[case] == pytest.approx(want, rel=1e-9), case


def test_predict_segments_unlabelled_test_images(sweep, tmp_path, tfds_dir, xla_cache):
    wd, cmr96, _ = sweep
    out = cli(["predict", f"--workdir={wd}", "--replica=c000/1", f"--input={cmr96}/test/image",
               f"--output={tmp_path}"], tfds_dir, xla_cache)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no masks given" in out.stdout
    images = sorted(os.listdir(os.path.join(cmr96, "test", "image")))
    for name in images[:5]:
        stem = os.path.splitext(name)[0]
        src = Image.open(os.path.join(cmr96, "test", "image", name))
        mask = np.asarray(Image.open(tmp_path / f"{stem}_pred.png"))
        assert mask.shape == src.size[::-1] and mask.max() <= 3
        assert np.asarray(Image.open(tmp_path / f"{stem}_overlay.png")).shape[-1] == 3
    assert not (tmp_path / "metrics.json").exists()


class _Refs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href")]


def test_report_is_self_contained(sweep, tmp_path, tfds_dir, xla_cache):
    wd, _, runs = sweep
    out = cli(["report", f"--workdir={wd}", f"--output={tmp_path}/rep", "--panels=3"],
              tfds_dir, xla_cache)
    assert out.returncode == 0, out.stderr[-2000:]
    rep = tmp_path / "rep"
    parser = _Refs()
    parser.feed((rep / "report.html").read_text())
    # The smoke grid is weight decay x data fraction: a matrix figure too (grid.png).
    assert parser.tags.count("table") == 2 and parser.tags.count("img") == 5
    for ref in parser.refs:  # only files inside the report folder
        assert "/" not in ref and ":" not in ref and (rep / ref).is_file(), ref
    assert set(parser.refs) == {"grid.png", "curves.png", "per_class.png", "panels_best.png",
                                "panels_worst.png"}
    for ref in parser.refs:
        with Image.open(rep / ref) as im:
            assert im.size[0] > 400 and im.size[1] > 200
    md = (rep / "report.md").read_text()
    assert md.count("](") == 5 and f"{runs[0]['dice']:.4f}" in md


def test_errors_name_the_culprit(sweep, tmp_path, tfds_dir, xla_cache):
    wd, cmr96, _ = sweep
    with pytest.raises(JaxsegError, match="is not a jaxseg workdir"):
        workdir.Workdir(str(tmp_path))
    wdo = workdir.Workdir(wd)
    with pytest.raises(JaxsegError, match="has no replica '9'; its replicas: 0, 1, 2, 3"):
        wdo.replica("9")
    out = cli(["inspect", f"--workdir={wd}", "--replica=c007/0"], tfds_dir, xla_cache)
    assert out.returncode == 2 and "has no replica 'c007/0'" in out.stderr
    model = model_io.from_replica(wdo.replica("0"))
    colour = np.zeros((96, 96, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(JaxsegError, match="colour.png has 3 colour channels"):
        predict.run_predict(model, str(tmp_path / "colour.png"), str(tmp_path / "o"))
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "odd.png")
    model.config.data.image_size = 0  # a model that takes the files' own size
    with pytest.raises(JaxsegError, match="odd is 30x30; .* divisible by 4"):
        predict.run_predict(model, str(tmp_path / "odd.png"), str(tmp_path / "o"))
    with pytest.raises(JaxsegError, match="mask .* is 40x40 but its image .* is 96x96"):
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "m.png")
        Image.fromarray(np.zeros((96, 96), np.uint8)).save(tmp_path / "i.png")
        predict.run_predict(model, str(tmp_path / "i.png"), str(tmp_path / "o"),
                            masks=str(tmp_path / "m.png"))


def test_predict_hdf5_volume_equals_its_slices_as_pngs(sweep, tmp_path):
    import h5py

    wd, cmr96, _ = sweep
    model = model_io.from_replica(workdir.Workdir(wd).replica("0"))
    names = ["cmr101", "cmr102", "cmr103"]
    os.makedirs(tmp_path / "png" / "image")
    os.makedirs(tmp_path / "png" / "mask")
    images, masks = [], []
    for n in names:
        for sub, suffix, out in (("image", "", images), ("mask", "_mask", masks)):
            src = os.path.join(cmr96, "val", sub, f"{n}{suffix}.png")
            out.append(np.asarray(Image.open(src)))
            Image.open(src).save(tmp_path / "png" / sub / f"{n}{suffix}.png")
    with h5py.File(tmp_path / "vol.h5", "w") as f:
        f["image"] = np.stack(images).astype(np.float32) / 255.0
        f["label"] = np.stack(masks)
    vol = predict.run_predict(model, str(tmp_path / "vol.h5"), str(tmp_path / "out_h5"))
    png = predict.run_predict(model, str(tmp_path / "png" / "image"), str(tmp_path / "out_png"),
                              masks=str(tmp_path / "png" / "mask"))
    for key in ("dice", "iou", "bf", "accuracy"):
        assert vol["metrics"][key] == pytest.approx(png["metrics"][key], rel=1e-12), key
    with h5py.File(tmp_path / "out_h5" / "vol_pred.h5") as f:
        label = np.asarray(f["label"])
    for z, n in enumerate(names):
        np.testing.assert_array_equal(
            label[z], np.asarray(Image.open(tmp_path / "out_png" / f"{n}_pred.png")))
    assert (tmp_path / "out_h5" / "vol_002_overlay.png").exists()


def test_a_cohort_being_trained_is_listed_as_running(tmp_path):
    # A cohort with a live trainer's lock (this process) and no checkpoint yet is running;
    # once the lock's process is gone it is interrupted.
    cohort = tmp_path / "run"
    cohort.mkdir()
    (cohort / "run.json").write_text(json.dumps(
        {"config": {"train": {"epochs": 3}}, "overrides": [{}, {"seed": 1}]}))
    workdir.acquire_lock(str(cohort))
    wd = workdir.Workdir(str(cohort))
    assert wd.cohorts[0].state == "running"
    assert [(r.id, r.status) for r in wd.replicas] == [("0", "running"), ("1", "running")]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    lock = json.loads((cohort / "lock.json").read_text())
    (cohort / "lock.json").write_text(json.dumps({**lock, "pid": int(dead)}))
    assert workdir.Workdir(str(cohort)).cohorts[0].state == "interrupted"
    workdir.remove_lock(str(cohort))  # not this process's lock any more: left alone
    assert (cohort / "lock.json").exists()
    # A dead process's lock is taken over; a live one's refuses, naming its holder.
    workdir.acquire_lock(str(cohort))
    assert json.loads((cohort / "lock.json").read_text())["pid"] == os.getpid()
    (cohort / "lock.json").write_text(json.dumps({**lock, "pid": 1, "since": "then"}))
    with pytest.raises(JaxsegError, match=r"being trained by process 1 on .* since then"):
        workdir.acquire_lock(str(cohort))


def test_configuration_names_use_the_experiments_label():
    from jaxseg import report

    def cfg(label, weights, lam):
        return {"label": label, "loss.weights": weights, "loss.params.lam": lam, "seed": 0,
                "n": 2, "dice_mean": 0.5, "dice_std": 0.1}

    configs_ = [cfg("switching", {"switching": 1.0}, 0.2),
                cfg("switching", {"switching": 1.0}, 0.4),
                cfg("dice_inv", {"dice_inv": 1.0}, 0.2)]
    # The weights follow from the label (left out); lam varies under one label (kept).
    keys = report._varying(configs_)
    assert keys == ["label", "loss.params.lam"]
    assert report._label(configs_[1], keys) == "switching, lam=0.4"
    assert report._names(configs_, keys) == ["switching, lam=0.2", "switching, lam=0.4",
                                             "dice_inv"]
    # Runs labelled by stage are named by the rate of that stage alone.
    stages = [{"label": lab, "model.dropout.encoder": e, "model.dropout.bottleneck": b}
              for lab, e, b in (("none", 0, 0), ("encoder", 0.1, 0), ("encoder", 0.2, 0),
                                ("bottleneck", 0, 0.1), ("bottleneck", 0, 0.4))]
    assert report._names(stages, report._varying(stages)) == [
        "none", "encoder, encoder=0.1", "encoder, encoder=0.2", "bottleneck, bottleneck=0.1",
        "bottleneck, bottleneck=0.4"]
    # Without a label every differing field names the configuration.
    for c in configs_:
        del c["label"]
    assert report._varying(configs_) == ["loss.weights", "loss.params.lam"]


def test_two_axis_grid_gets_a_matrix(tmp_path):
    from jaxseg import report

    # Cells by hand: dice = 10 * weight decay + fraction; the (1e-3, 0.5) cell has no run.
    configs_ = [{"optim.weight_decay": wd, "data.fraction": f, "n": 1,
                 "dice_mean": 10 * wd + f, "dice_std": None}
                for wd, f in ((1e-3, 1.0), (0.0, 0.5), (0.0, 1.0))]
    keys = report._varying(configs_)
    assert report.grid_axes(configs_, keys) == ("optim.weight_decay", "data.fraction")
    rows, cols, matrix = report.grid_matrix(configs_, ("optim.weight_decay", "data.fraction"),
                                            "dice")
    assert rows == [0.0, 1e-3] and cols == [0.5, 1.0]
    np.testing.assert_array_equal(matrix, [[0.5, 1.0], [np.nan, 1.01]])
    report._heatmap(str(tmp_path / "grid.png"), configs_, ("optim.weight_decay",
                                                            "data.fraction"), "dice")
    assert (tmp_path / "grid.png").stat().st_size > 1000
    # One axis, a third axis, an axis of one value, a list-valued axis: no matrix.
    assert report.grid_axes(configs_, keys[:1]) is None
    assert report.grid_axes(configs_, keys + ["seed"]) is None
    named = [dict(c, label="a") for c in configs_]
    assert report.grid_axes(named, ["label", "data.fraction"]) is None
    listed = [dict(c, w=[1, k]) for k, c in enumerate(configs_)]
    assert report.grid_axes(listed, ["w", "data.fraction"]) is None
    # A named axis (optimizer x learning rate) gives the rows, whichever order it comes in.
    opt = [{"optim.name": o, "optim.learning_rate": lr, "dice_mean": d}
           for o, lr, d in (("sgd", 1e-2, 0.7), ("adam", 1e-3, 0.8), ("adam", 1e-2, 0.6))]
    assert report.grid_axes(opt, ["optim.learning_rate", "optim.name"]) == (
        "optim.name", "optim.learning_rate")
    # AdamW's own weight decay follows from the optimizer: not a third axis.
    decay = [dict(c, **{"optim.weight_decay": 1e-4 if c["optim.name"] == "adamw" else 0.0})
             for c in opt + [{"optim.name": "adamw", "optim.learning_rate": 1e-3}]]
    assert report._varying(decay) == ["optim.name", "optim.learning_rate"]
    rows, cols, matrix = report.grid_matrix(opt, ("optim.name", "optim.learning_rate"), "dice")
    assert rows == ["adam", "sgd"] and cols == [1e-3, 1e-2]
    np.testing.assert_array_equal(matrix, [[0.8, 0.6], [np.nan, 0.7]])
    report._heatmap(str(tmp_path / "opt.png"), opt, ("optim.name", "optim.learning_rate"),
                    "dice")
    assert (tmp_path / "opt.png").stat().st_size > 1000
    # Fewer configurations than half the cells: a list, not a matrix.
    sparse = [{"a": i, "b": i, "dice_mean": 0.5} for i in range(4)]
    assert report.grid_axes(sparse, ["a", "b"]) is None


def test_a_structure_keeps_its_colour_whatever_its_index():
    red, green, blue = drawing.COLOURS[1], drawing.COLOURS[2], drawing.COLOURS[3]
    np.testing.assert_array_equal(drawing.class_colours(("bg", "RV", "MYO", "LV")),
                                  drawing.COLOURS[:4])
    # The LGE-style 3-class set: the myocardium green and the blood pool blue, as in cmr96.
    np.testing.assert_array_equal(drawing.class_colours(("bg", "MYO", "blood")),
                                  [[0, 0, 0], green, blue])
    # An unknown structure takes the first colour no known one uses.
    np.testing.assert_array_equal(drawing.class_colours(("bg", "LV", "thing")),
                                  [[0, 0, 0], blue, red])
    # One pixel by hand: grey 0.4 (102) under 45% green; background stays grey.
    image = np.full((1, 2), 0.4)
    pic = drawing.overlay(image, np.array([[1, 0]]),
                          colours=drawing.class_colours(("bg", "MYO", "blood")))
    np.testing.assert_array_equal(pic[0, 0], np.round(102 * 0.55 + green * 0.45))
    np.testing.assert_array_equal(pic[0, 1], [102, 102, 102])


def test_predict_with_undefined_metrics_says_na_and_exits_0(sweep, tmp_path, tfds_dir,
                                                             xla_cache):
    # An empty mask: Dice is undefined for every class the model does not predict there,
    # and HD95 has no distance. Written as null, printed as n/a, exit 0.
    wd, cmr96, _ = sweep
    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    Image.open(os.path.join(cmr96, "val", "image", "cmr101.png")).save(
        tmp_path / "img" / "cmr101.png")
    Image.fromarray(np.zeros((96, 96), np.uint8)).save(tmp_path / "msk" / "cmr101_mask.png")
    out = cli(["predict", f"--workdir={wd}", "--replica=0", f"--input={tmp_path / 'img'}",
               f"--masks={tmp_path / 'msk'}", f"--output={tmp_path / 'pred'}"],
              tfds_dir, xla_cache)
    assert out.returncode == 0, out.stderr[-2000:]
    with open(tmp_path / "pred" / "metrics.json") as f:
        got = json.load(f)
    assert got["hd95"] is None and "HD95 n/a" in out.stdout
    # Whatever foreground the model predicts on the empty truth scores 0 (a false alarm).
    assert got["dice"] in (None, 0.0)


@pytest.fixture(scope="module")
def acdc_model(tmp_path_factory, tfds_dir):
    """experiments/acdc_crop.py shrunk to seconds (a tiny U-Net, 5% of the slices, 1 epoch),
    trained in process (what `jaxseg train` runs), with its per-volume evaluation of the 20
    validation volumes."""
    acdc = shared_dir("acdc")
    wd = str(tmp_path_factory.mktemp("acdc_train"))
    c = expand.load_experiment(f"{ROOT}/experiments/acdc_crop.py")[0].get_config()
    c.data.source_dir, c.data.tfds_dir, c.data.fraction = acdc, tfds_dir, 0.05
    c.model.base_width, c.model.depth = 4, 2
    c.train.epochs, c.eval.every = 1, 1
    train.train_and_evaluate(c, wd)  # the command line is tested on cmr96 above
    with open(os.path.join(wd, "summary.json")) as f:
        best = json.load(f)["replicas"][0]["best"]
    model = model_io.from_replica(workdir.Workdir(wd).replica("0"))
    return model, acdc, best, datasets.load(model.config.data).val.volume_ids


def test_predict_on_an_acdc_volume_reproduces_trainings_per_volume_dice(acdc_model, tmp_path):
    model, acdc, best, volume_ids = acdc_model
    # The exported model, as `jaxseg predict --model` loads it (its command line is
    # tested on cmr96 above).
    export = model_io.from_export(model_io.export(model, str(tmp_path / "model")))
    name = "patient085_frame01"  # 288x184 slices: cropped in height, padded in width
    folder = tmp_path / "volumes"  # a folder of .h5 volumes
    folder.mkdir()
    os.symlink(f"{acdc}/data/{name}.h5", folder / f"{name}.h5")
    (row,) = predict.run_predict(export, str(folder), str(tmp_path / "one"))["cases"]
    # The volume's 3-D Dice at the input's size equals the one training computed on the
    # 160x160 crops (every foreground pixel of the validation volumes lies inside them).
    assert (row["slices"], row["height"], row["width"]) == (15, 288, 184)
    want = best["case_dice"][str(volume_ids.index(name))]
    assert row["dice"] == pytest.approx(want, rel=1e-9)
    # Over several volumes (a quoted pattern), the per-volume mean is the mean of the
    # volumes' own per-class Dice, then over RV/MYO/LV (worked out here from the rows).
    res = predict.run_predict(export, f"{acdc}/data/patient08[25]_frame0?.h5",
                              str(tmp_path / "two"))
    rows = res["cases"]
    assert [c["case"] for c in rows] == [
        "patient082_frame01", "patient082_frame02", "patient085_frame01", "patient085_frame02"]
    per_class = np.array([c["dice_per_class"] for c in rows], float)
    np.testing.assert_allclose(res["metrics"]["volume_dice_per_class"],
                               np.nanmean(per_class, axis=0), rtol=1e-12)
    assert res["metrics"]["volume_dice"] == pytest.approx(
        np.nanmean(np.nanmean(per_class, axis=0)[1:]), rel=1e-12)
    assert "per volume" in predict.format_metrics(res, model.config.data.class_names)
    # Each volume's 3-D Dice is training's own (case_dice), patient082's too: its slices are
    # 154 rows high, zero-padded to 160 for the model, and training's evaluation scores
    # only the slice (Split.region), as predict does at the slice's own size.
    assert [c["height"] for c in rows] == [154, 154, 288, 288]
    for c in rows:
        want = best["case_dice"][str(volume_ids.index(c["case"]))]
        assert (c["dice"] is None) == (want is None), c["case"]
        assert want is None or c["dice"] == pytest.approx(want, rel=1e-9), c["case"]
    with pytest.raises(JaxsegError, match="no files match"):
        predict.gather_inputs(f"{acdc}/data/nothing*.h5", None, model.config)
