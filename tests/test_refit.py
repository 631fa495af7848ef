"""jaxseg refit: a chosen run trained again on train + validation for its best epoch count,
its learning rate following the original run's schedule, into a normal train workdir."""

import json
import os
import subprocess
import sys

import pytest

from jaxseg import configs, model_io, outputs, predict, refit, train, workdir
from jaxseg.data import datasets
from jaxseg.errors import JaxsegError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def tiny(tfds_dir, schedule="cosine"):
    c = configs.default()
    c.data.tfds_dir = tfds_dir
    c.data.phantom.size = c.data.image_size = 32
    c.data.phantom.num_train, c.data.phantom.num_val = 16, 8
    c.model.base_width, c.model.depth = 4, 2
    c.optim.schedule, c.optim.learning_rate = schedule, 3e-3
    c.train.epochs, c.train.batch_size, c.eval.batch_size = 5, 8, 8
    c.train.strategy = "sequential"
    return c


def lrs(wd):
    """The learning rate of each evaluated epoch (a refit evaluates only its last)."""
    return {h["epoch"]: h["lr"] for h in outputs.read_jsonl(os.path.join(wd, "history.jsonl"))}


def same_rates(refit_wd, original_wd):
    got, want = lrs(refit_wd), lrs(original_wd)
    assert got and all(v == pytest.approx(want[e], rel=1e-6) for e, v in got.items()), (got, want)
    return got


def test_refit_trains_train_and_val_for_the_best_epochs_on_the_runs_schedule(
        tmp_path, tfds_dir, xla_cache):
    original = str(tmp_path / "run")
    s = train.train_and_evaluate(tiny(tfds_dir), original, [{"seed": 3}])
    best = s["replicas"][0]["best_epoch"]
    out = str(tmp_path / "refit")
    proc = subprocess.run([sys.executable, "-m", "jaxseg.main", "refit",
                           f"--workdir={original}", "--replica=0", f"--output={out}",
                           f"--compilation_cache={xla_cache}"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    assert summary["epochs"] == best and list(same_rates(out, original)) == [best]
    # The cosine schedule spans the original 5 epochs: refit at (say) epoch 2, the learning
    # rates are the run's own epoch by epoch, not a cosine squeezed into 2 epochs.
    rep = workdir.Workdir(original).replica("0")
    rep.best_epoch = 2
    two = str(tmp_path / "refit2")
    train.train_and_evaluate(refit.refit_config(rep), two)
    assert same_rates(two, original)[2] > 3e-3 * 0.6  # a 2-epoch cosine: about half by then
    # Its config: the run's seed, train + val pooled (16 + 8 images), validation kept.
    config = workdir.replica_config(workdir.Workdir(out).replica("0"))
    assert config.seed == 3 and config.data.train_on_val and config.train.schedule_epochs == 5
    data = datasets.load(config.data)
    assert len(data.train) == 24 and set(data.val.ids) <= set(data.train.ids)
    # A normal train workdir: predict reads it.
    model = model_io.from_workdir(out, "0")
    phantom_val = str(tmp_path / "val.h5")
    import h5py

    with h5py.File(phantom_val, "w") as f:
        f["image"] = data.val.images[:2, ..., 0]
    res = predict.run_predict(model, phantom_val, str(tmp_path / "pred"))
    assert res["cases"][0]["slices"] == 2 and res["metrics"] is None


def test_refit_refuses_a_plateau_schedule_and_an_unevaluated_replica(tmp_path, tfds_dir):
    c = tiny(tfds_dir, schedule="plateau")
    c.train.epochs = 1
    train.train_and_evaluate(c, str(tmp_path / "run"))
    with pytest.raises(JaxsegError, match="optim.schedule=plateau, which follows the "
                       "validation loss"):
        refit.refit(str(tmp_path / "run"), "0", str(tmp_path / "refit"))
    rep = workdir.Workdir(str(tmp_path / "run")).replica("0")
    rep.best_epoch = 0
    with pytest.raises(JaxsegError, match="has no best epoch yet"):
        refit.refit_config(rep)
