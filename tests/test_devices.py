"""The replica axis on several devices: a sweep on 4 forced host devices equals one device,
inert padding replicas stay out of the results, and a sweep checkpointed on N devices resumes
on M devices."""

import csv
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def sweep(workdir, devices, tfds_dir, xla_cache, forced=4):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={forced}"}
    out = subprocess.run(
        [sys.executable, "-m", "jaxseg.main", "sweep",
         f"--config={ROOT}/experiments/l2_fraction.py:smoke", f"--workdir={workdir}",
         "--config.train.epochs=3", f"--config.train.devices={devices}",
         f"--config.data.tfds_dir={tfds_dir}", f"--compilation_cache={xla_cache}"],
        cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stderr


def rows(workdir):
    with open(os.path.join(workdir, "results.csv")) as f:
        return list(csv.DictReader(f))


def assert_same(a, b):
    assert len(a) == len(b) == 4  # 2 weight decays x 2 data fractions: one cohort of 4
    for ra, rb in zip(a, b, strict=True):
        for key in ("dice", "val_loss", "iou", "bf", "dice_RV", "dice_LV"):
            assert float(ra[key]) == pytest.approx(float(rb[key]), rel=2e-3, abs=2e-3), key
        for key in ("run", "status", "best_epoch", "optim.weight_decay", "data.fraction"):
            assert ra[key] == rb[key], key


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, tfds_dir, xla_cache):
    wd = str(tmp_path_factory.mktemp("one"))
    sweep(wd, 1, tfds_dir, xla_cache)
    return rows(wd)


def test_sweep_on_4_devices_equals_one_device(one_device, tmp_path, tfds_dir, xla_cache):
    log = sweep(str(tmp_path), 4, tfds_dir, xla_cache)
    assert "replicas sharded over 4 devices" in log
    assert_same(rows(str(tmp_path)), one_device)


def test_padding_replicas_stay_out_and_resume_on_other_device_count(one_device, tmp_path,
                                                                    tfds_dir, xla_cache):
    # 4 replicas on 3 devices: padded to 6 with 2 inert replicas.
    wd = str(tmp_path)
    log = sweep(wd, 3, tfds_dir, xla_cache)
    assert "(+2 inert padding replicas)" in log
    assert_same(rows(wd), one_device)
    # Interrupted after epoch 2 (the last checkpoint and the results removed) ...
    cohort = os.path.join(wd, "cohorts", "c000")
    shutil.rmtree(os.path.join(cohort, "checkpoints", "3"))
    for name in ("summary.json", "results.csv", "results.json", "results.md"):
        os.remove(os.path.join(cohort if name == "summary.json" else wd, name))
    # ... and resumed on 2 devices: same results as the uninterrupted one-device sweep.
    log = sweep(wd, 2, tfds_dir, xla_cache)
    assert "resumed from the checkpoint of epoch 2" in log
    assert "replicas sharded over 2 devices" in log
    assert_same(rows(wd), one_device)


def test_two_processes_on_loopback_run_one_sweep(one_device, tmp_path, tfds_dir, xla_cache):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    wd = str(tmp_path / "sweep")
    procs = [subprocess.Popen(
        [sys.executable, "-m", "jaxseg.main", "sweep",
         f"--config={ROOT}/experiments/l2_fraction.py:smoke", f"--workdir={wd}",
         "--config.train.epochs=3", "--config.train.devices=0",
         f"--config.data.tfds_dir={tfds_dir}", f"--compilation_cache={xla_cache}_p{i}",
         f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    logs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, logs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "replicas sharded over 4 devices" in logs[0][1]
    assert_same(rows(wd), one_device)  # one table, written once (by process 0)
    assert not os.path.exists(os.path.join(wd, "results.json.tmp"))
