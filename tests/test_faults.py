"""Fault injection: each class of fault gives one line naming the culprit, and nothing already
computed changes (a run that completes equals an uninterrupted one).

Two processes on one workdir (together and staggered), a truncated and a deleted checkpoint
file, a replica whose loss explodes without becoming NaN, an edited data folder and two
processes preparing one data set at once, a disk that fills at checkpoint time (a file-size
limit: writes fail with EFBIG, as a full disk fails them with ENOSPC), an output folder the
OS refuses, a damaged workdir file, config and experiment-file mistakes, a workdir resumed
with its data cache moved or its data path spelt another way.
"""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from jaxseg import configs, outputs, train
from jaxseg import workdir as workdir_lib
from jaxseg.data import datasets
from jaxseg.errors import JaxsegError


def tiny(tfds_dir, epochs=3):
    c = configs.default()
    c.data.tfds_dir = tfds_dir
    c.data.phantom.size = c.data.image_size = 32
    c.data.phantom.num_train, c.data.phantom.num_val = 16, 8
    c.model.base_width, c.model.depth = 4, 2
    c.train.epochs, c.train.batch_size, c.eval.batch_size = epochs, 8, 8
    c.train.strategy = "sequential"
    return c


def history(wd):
    return outputs.read_jsonl(os.path.join(str(wd), "history.jsonl"))


CLI = ["--config=experiments/quickstart.py", "--config.data.phantom.size=32",
       "--config.data.image_size=32", "--config.data.phantom.num_train=32",
       "--config.data.phantom.num_val=8", "--config.model.base_width=4",
       "--config.model.depth=2", "--config.train.strategy=sequential"]


def cli(args, tfds_dir, xla_cache, **kw):
    return [sys.executable, "-m", "jaxseg.main", *args, f"--config.data.tfds_dir={tfds_dir}",
            f"--compilation_cache={xla_cache}"], dict(cwd=ROOT, text=True, **kw)


def test_second_process_on_a_workdir_refuses_naming_the_holder(tmp_path, tfds_dir, xla_cache):
    wd = tmp_path / "sweep"
    args = ["sweep", *CLI, f"--workdir={wd}", "--config.train.epochs=4"]
    # Started together: exactly one trains, the other refuses in one line.
    cmd, kw = cli(args, tfds_dir, xla_cache, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs = [subprocess.Popen(cmd, **kw) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [o[1][-1500:] for o in outs]
    refused = outs[[p.returncode for p in procs].index(2)][1].strip().splitlines()[-1]
    assert refused.startswith("jaxseg: error: cohort") and "is being trained by process" in refused
    records = history(wd / "cohorts" / "c000")
    assert len(records) == 3 * 4 == len({(r["replica"], r["epoch"]) for r in records})
    # Staggered: a second launch while the first trains refuses at once; the first goes on.
    wd2 = tmp_path / "staggered"
    cmd, kw = cli(["train", *CLI, f"--workdir={wd2}", "--config.train.epochs=4"], tfds_dir,
                  xla_cache, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = subprocess.Popen(cmd, **kw)
    deadline = time.time() + 300
    while not (wd2 / "lock.json").exists():
        assert first.poll() is None and time.time() < deadline
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert second.returncode == 2
    assert f"being trained by process {first.pid}" in second.stderr.strip().splitlines()[-1]
    assert first.wait(timeout=600) == 0 and len(history(wd2)) == 3 * 4
    assert [(r["replica"], r["epoch"], r["dice"]) for r in history(wd2)] == \
        [(r["replica"], r["epoch"], r["dice"]) for r in records]  # the same run as the sweep's


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_damaged_newest_checkpoint_falls_back_and_resumes_equal(damage, tfds_dir, tmp_path):
    c = tiny(tfds_dir)
    full = tmp_path / "full"
    train.train_and_evaluate(c, str(full), [{}, {"seed": 1}])
    copy = tmp_path / "copy"
    shutil.copytree(full, copy)
    state = copy / "checkpoints" / "3" / "state"
    victim = max((p for p in state.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    if damage == "truncate":
        with open(victim, "r+b") as f:
            f.truncate(victim.stat().st_size // 2)
    else:
        victim.unlink()
    # Readers fall back without touching the folder.
    rep = workdir_lib.Workdir(str(copy)).replica("0")
    _, _, track, step = workdir_lib.restore_replica(rep)
    assert step == 2 and track.epoch == 2
    assert (copy / "checkpoints" / "3").exists()
    # The trainer sets the damaged step aside (not deleted) and trains epoch 3 again.
    (copy / "summary.json").unlink()
    s = train.train_and_evaluate(c, str(copy), [{}, {"seed": 1}])
    assert s["complete"] and (copy / "damaged_checkpoints" / "3").is_dir()
    assert history(copy) == history(full)
    assert workdir_lib.restore_replica(workdir_lib.Workdir(str(copy)).replica("1"))[3] == 3


def test_exploding_replica_is_diverged_and_left_out_of_the_mean(tfds_dir, tmp_path, caplog):
    c = tiny(tfds_dir, epochs=2)
    c.optim.name = "adam"
    s = train.train_and_evaluate(c, str(tmp_path), [{}, {"optim.learning_rate": 1e3}])
    h = {(r["replica"], r["epoch"]): r for r in history(tmp_path)}
    assert [r["status"] for r in s["replicas"]] == ["finished", "diverged"]
    # It exploded without a NaN: a finite loss above 100 x its 2 loss weights (ce, dice).
    assert np.isfinite(h[(1, 1)]["train_loss"]) and h[(1, 1)]["train_loss"] > 200
    assert s["replicas"][1]["stopped_epoch"] == 1 and (1, 2) not in h
    alone = tiny(tfds_dir, epochs=2)
    alone.optim.name = "adam"
    train.train_and_evaluate(alone, str(tmp_path / "alone"), [{}])
    assert h[(0, 2)]["dice"] == history(tmp_path / "alone")[-1]["dice"]


def test_edited_data_folder_is_read_again_and_concurrent_preparation(tmp_path, tfds_dir):
    from PIL import Image

    root = tmp_path / "data"
    for split in ("train", "val"):
        for i in range(3):
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            (root / split / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(
                root / split / "images" / f"im{i}.png")
            mask = np.zeros((8, 8), np.uint8)
            mask[:4] = 255
            Image.fromarray(mask).save(root / split / "masks" / f"im{i}.png")
    c = configs.default().data
    c.name, c.source_dir, c.tfds_dir = "folder", str(root), tfds_dir
    c.num_classes, c.grey_levels, c.image_size = 2, (0, 255), 0
    d = datasets.load(c)
    assert len(d.train) == 3 and d.class_counts[1] == 3 * 32
    (root / "train" / "images" / "im2.png").unlink()
    (root / "train" / "masks" / "im2.png").unlink()
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(root / "train" / "masks" / "im0.png")
    d = datasets.load(c)
    assert len(d.train) == 2 and d.class_counts[1] == 64 + 32
    # Two processes preparing one new data set at once both succeed.
    fresh = str(tmp_path / "tfds_fresh")
    code = ("import sys; from jaxseg.data import builders; "
            f"builders.prepare('phantom', {fresh!r}, size=16, num_train=40, num_val=8); "
            "print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]


def _no_big_files():  # in the child: files over 200 KB fail to write (EFBIG), no signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


def test_full_disk_at_checkpoint_time_then_resume(tmp_path, tfds_dir, xla_cache):
    base = [sys.executable, "-m", "jaxseg.main", "train", *CLI, "--config.train.epochs=2",
            "--config.model.base_width=16",  # ~1 MB of state: the checkpoint write fails
            f"--config.data.tfds_dir={tfds_dir}"]
    cached = [*base, f"--compilation_cache={xla_cache}"]  # the re-run compiles nothing
    ref, wd = tmp_path / "ref", tmp_path / "run"
    kw = dict(cwd=ROOT, text=True, capture_output=True, timeout=600)
    assert subprocess.run([*cached, f"--workdir={ref}"], **kw).returncode == 0  # data prepared
    # No compilation cache in the run with the size limit: its files would hit it first.
    full = subprocess.run([*base, "--compilation_cache=", f"--workdir={wd}"],
                          preexec_fn=_no_big_files, **kw)
    last = full.stderr.strip().splitlines()[-1]
    assert full.returncode == 2, full.stderr[-2000:]
    assert last.startswith("jaxseg: error: cannot write checkpoint step 1") and "resumes" in last
    assert "Traceback" not in full.stderr
    again = subprocess.run([*cached, f"--workdir={wd}"], **kw)
    assert again.returncode == 0, again.stderr[-2000:]
    assert history(wd) == history(ref)


@pytest.mark.parametrize("args, message", [
    (["train", *CLI, "--config.trian.epochs=2"],
     'no config section \'trian\' Did you mean "train"'),
    (["train", "--config=experiments/quickstart.py:smoke"],
     "get_config() takes no argument; drop ':smoke'"),
    (["train", "--config=experiments/loss_functions.py:smok"],
     "unknown experiment argument 'smok'"),
    (["train", *CLI, "--config.loss.weights.focal=1.0"],
     """give the whole dict: '--config.loss.weights={"ce": 1.0, "focal": 1.0}'"""),
    (["train", *CLI, "--config.loss.weights={'dice': -1.0}"], "a loss weight"),
    (["train", *CLI, "--config.train.divergence_loss=-1"], "train.divergence_loss=-1"),
])
def test_config_mistakes_are_one_line(args, message, tmp_path, tfds_dir, xla_cache):
    cmd, kw = cli([*args, f"--workdir={tmp_path}"], tfds_dir, xla_cache, capture_output=True)
    out = subprocess.run(cmd, timeout=300, **kw)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and last.startswith("jaxseg: error:") and message in last, last
    assert "Traceback" not in out.stderr


def test_syntax_error_and_refused_folders_are_one_line(tmp_path, tfds_dir, xla_cache):
    bad = tmp_path / "bad.py"
    bad.write_text("def get_config(:\n    pass\n")
    cmd, kw = cli(["train", f"--config={bad}", f"--workdir={tmp_path}/w"], tfds_dir, xla_cache,
                  capture_output=True)
    out = subprocess.run(cmd, timeout=300, **kw)
    assert out.stderr.strip().splitlines()[-1] == \
        f"jaxseg: error: experiment file {bad}, line 1: invalid syntax"
    # A workdir the OS refuses (a path through a file): one line naming it.
    (tmp_path / "file").write_text("")
    cmd, kw = cli(["train", *CLI, f"--workdir={tmp_path}/file/w"], tfds_dir, xla_cache,
                  capture_output=True)
    out = subprocess.run(cmd, timeout=300, **kw)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and "Not a directory" in last and f"{tmp_path}/file" in last
    assert "Traceback" not in out.stderr


def test_damaged_workdir_json_is_named(tmp_path, tfds_dir):
    train.train_and_evaluate(tiny(tfds_dir, epochs=1), str(tmp_path))
    text = (tmp_path / "run.json").read_text()
    (tmp_path / "run.json").write_text(text[:len(text) // 2])
    with pytest.raises(JaxsegError, match=r"run.json is damaged"):
        workdir_lib.Workdir(str(tmp_path))
    with pytest.raises(JaxsegError, match=r"run.json is damaged"):
        train.train_and_evaluate(tiny(tfds_dir, epochs=1), str(tmp_path))


def test_same_run_when_cache_moves_or_path_is_spelt_otherwise(tmp_path, tfds_dir, monkeypatch):
    c = tiny(tfds_dir, epochs=1)
    train.train_and_evaluate(c, str(tmp_path / "w"))
    moved = tiny(str(tmp_path / "other_cache"), epochs=1)
    s = train.train_and_evaluate(moved, str(tmp_path / "w"))  # resumed: nothing to train
    assert s["epochs"] == 1
    # A data path written relative or absolute is the same run; another folder is not.
    monkeypatch.chdir(tmp_path)
    ident = {"config": {"data": {"source_dir": "data/cmr96"}}, "overrides": [{}]}
    workdir_lib.guard(str(tmp_path), "g.json", ident, "run")
    same = {"config": {"data": {"source_dir": str(tmp_path / "data" / "cmr96")}},
            "overrides": [{}]}
    workdir_lib.guard(str(tmp_path), "g.json", same, "run")
    other = {"config": {"data": {"source_dir": "/elsewhere"}}, "overrides": [{}]}
    with pytest.raises(JaxsegError, match=r"data.source_dir: '.*data/cmr96' recorded, "
                                          r"'/elsewhere' now"):
        workdir_lib.guard(str(tmp_path), "g.json", other, "run")
    assert json.loads((tmp_path / "g.json").read_text())["config"]["data"]["source_dir"] == \
        "data/cmr96"  # the record itself is never rewritten
