"""The cohort engine: cohort == runs one by one (every strategy), resume == uninterrupted,
a diverging replica is isolated, frozen replicas do not change, the CLI leaves its outputs;
the benchmark tables and the XLA options per backend."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxseg import bench, checkpoint, configs, outputs, train
from jaxseg.engine import replicas
from jaxseg.engine.cohort import build_cohort
from jaxseg.engine.tracker import Policy, Tracker
from jaxseg.errors import JaxsegError

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# Every evaluation's metrics (history.jsonl); the full set adds these for the best weights
# (eval.full_metrics=best, the default).
METRICS = ("train_loss", "loss", "dice", "iou", "accuracy")
FULL = ("bf", "bf_image", "hd95")


def tiny_config(tfds_dir, epochs=2):
    c = configs.default()
    c.data.tfds_dir = tfds_dir
    c.data.phantom.size = 32
    c.data.phantom.num_train = 20
    c.data.phantom.num_val = 8
    c.data.image_size = 32
    c.model.base_width = 4
    c.model.depth = 2
    c.loss.weights = {"ce": 1.0, "dice_inv": 1.0}
    c.augment.hflip = True
    c.optim.learning_rate = 3e-3
    c.train.epochs = epochs
    c.train.batch_size = 8
    c.eval.batch_size = 3  # not a divisor of 8: exercises padded eval batches
    # Tiny models are compile-bound: the sequential strategy compiles one replica's program
    # whatever R (the strategy test sets each strategy itself).
    c.train.strategy = "sequential"
    return c


def history(workdir):
    rows = outputs.read_jsonl(os.path.join(workdir, "history.jsonl"))
    return {(r["replica"], r["epoch"]): r for r in rows}


def summary(workdir):
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def assert_same_metrics(a, b, atol=2e-3, rtol=1e-3, keys=METRICS):
    for key in keys:
        x, y = a[key], b[key]
        if x is None or y is None:
            assert x is None and y is None, key
        else:
            assert x == pytest.approx(y, rel=rtol, abs=atol), key
    np.testing.assert_allclose(np.array(a["dice_per_class"], float),
                               np.array(b["dice_per_class"], float), atol=atol)


# Three replicas: different weight decay, loss lambda, and one trains on half the images.
REPLICAS = [{"optim.weight_decay": 0.0, "loss.params.lam": 0.2},
            {"optim.weight_decay": 1e-2, "loss.params.lam": 0.8, "seed": 1},
            {"optim.weight_decay": 1e-3, "loss.params.lam": 0.5, "data.fraction": 0.5,
             "seed": 2}]


@pytest.fixture(scope="module")
def singles(tfds_dir, tmp_path_factory):
    out = []
    for i, o in enumerate(REPLICAS):
        wd = str(tmp_path_factory.mktemp(f"single{i}"))
        c = tiny_config(tfds_dir)
        c.train.strategy = "unroll"  # one replica: the plain program, run by itself
        train.train_and_evaluate(c, wd, [o])
        out.append(history(wd))
        out[-1]["summary"] = summary(wd)
    return out


@pytest.mark.parametrize("strategy", ["unroll", "vmap", "map", "sequential", "chunked"])
def test_cohort_equals_runs_one_by_one(strategy, singles, tfds_dir, tmp_path):
    c = tiny_config(tfds_dir)
    c.train.strategy, c.train.chunk = strategy, 2  # chunked: replicas {0, 1}, {2, inert}
    out = train.train_and_evaluate(c, str(tmp_path), REPLICAS)
    assert out["strategy"] == strategy
    # Replica 2 keeps 10 of the 20 images: 2 of the cohort's 3 steps per epoch. Sequential
    # cohorts skip its idle third step (2 epochs), chunked ones the call of its chunk of
    # 2; the others step all replicas together.
    assert out["skipped_replica_steps"] == {"sequential": 2, "chunked": 4}.get(strategy, 0)
    h = history(str(tmp_path))
    for r in range(3):
        for epoch in (1, 2):
            assert_same_metrics(h[(r, epoch)], singles[r][(0, epoch)])
            if strategy == "sequential":  # each replica's own buffers: the lone run's program
                assert [h[(r, epoch)][k] for k in METRICS] == \
                    [singles[r][(0, epoch)][k] for k in METRICS]
        # The best weights' full metric set, computed once training ended.
        best, lone = out["replicas"][r]["best"], singles[r]["summary"]["replicas"][0]["best"]
        assert out["replicas"][r]["best_epoch"] == singles[r]["summary"]["replicas"][0][
            "best_epoch"]
        assert_same_metrics(best, lone, keys=METRICS[1:] + FULL)
    # Different hyperparameters really gave different runs.
    assert h[(0, 2)]["train_loss"] != h[(1, 2)]["train_loss"]


def test_full_metrics_of_the_best_equal_those_of_its_epoch(singles, tfds_dir, tmp_path):
    # eval.full_metrics=every computes the full set at every evaluation; the default
    # computes it once, on the kept best weights: the same numbers as at the best epoch.
    c = tiny_config(tfds_dir)
    c.train.strategy = "unroll"
    c.eval.full_metrics = "every"
    s = train.train_and_evaluate(c, str(tmp_path), [REPLICAS[0]])
    every, best = history(str(tmp_path)), singles[0]["summary"]["replicas"][0]
    assert all(k in row for row in every.values() for k in FULL + ("dice",))
    assert all(k not in singles[0][(0, e)] for e in (1, 2) for k in FULL + ("case_dice",))
    at_best = every[(0, best["best_epoch"])]
    for key in METRICS[1:] + FULL + ("hd95_missed",):
        assert at_best[key] == best["best"][key], key
    assert s["replicas"][0]["best"]["case_dice"] == best["best"]["case_dice"]
    assert best["best"]["case_dice"] and s["time_s"]["evaluate"] > 0


def test_training_program_compiled_once_before_its_first_call(tfds_dir, tmp_path):
    # The training program is compiled ahead of its first call, timed apart from the steps
    # (time_s["compile"]), and the call reuses it: one compile, not two.
    compiles = []

    def listen(event, seconds, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append((kwargs.get("fun_name", ""), seconds))

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        s = train.train_and_evaluate(tiny_config(tfds_dir), str(tmp_path), REPLICAS[:2])
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    steps = [sec for name, sec in compiles if "one_step_local" in name]
    t = s["time_s"]
    assert len(steps) == 1 and t["compile"] >= steps[0] > 0
    assert t["steps"] > 0 and t["other"] >= 0
    assert t["epochs"] == pytest.approx(t["compile"] + t["steps"] + t["evaluate"]
                                        + t["checkpoint"] + t["other"])


def test_fold_cohort_equals_folds_one_by_one(tfds_dir, tmp_path):
    # 3-fold cross-validation over the 28 pooled phantom images (held-out folds of 10, 9, 9
    # images: each replica is evaluated on its own, differently padded, index set).
    c = tiny_config(tfds_dir)
    c.data.folds = 3
    folds = [{"data.fold": f, "seed": f} for f in range(3)]
    train.train_and_evaluate(c, str(tmp_path / "cohort"), folds)
    h = history(str(tmp_path / "cohort"))
    for f in range(3):
        train.train_and_evaluate(c, str(tmp_path / f"fold{f}"), [folds[f]])
        one = history(str(tmp_path / f"fold{f}"))
        for epoch in (1, 2):
            assert_same_metrics(h[(f, epoch)], one[(0, epoch)])
    assert h[(0, 2)]["loss"] != h[(1, 2)]["loss"]


def test_scan_loop_equals_step_loop(singles, tfds_dir, tmp_path):
    c = tiny_config(tfds_dir)
    c.train.loop = "scan"
    c.train.strategy = "sequential"  # one scanned epoch per replica, on its own buffers
    train.train_and_evaluate(c, str(tmp_path), REPLICAS)
    for r in range(3):
        assert_same_metrics(history(str(tmp_path))[(r, 2)], singles[r][(0, 2)])


def test_diverging_replica_is_isolated(tfds_dir, tmp_path):
    c = tiny_config(tfds_dir)
    good = [REPLICAS[0], REPLICAS[1]]
    absurd = {"optim.learning_rate": 1e38, "seed": 5}
    s_all = train.train_and_evaluate(c, str(tmp_path / "with"), [good[0], absurd, good[1]])
    # The same cohort with a sane middle replica: the same program (3 replicas), so the
    # neighbours must match to rounding; a cohort of 2 compiles other grouped-convolution
    # kernels, whose sums round differently (~5e-6 relative on XLA CPU's Eigen kernels).
    train.train_and_evaluate(c, str(tmp_path / "without"), [good[0], {"seed": 5}, good[1]])
    assert [r["status"] for r in s_all["replicas"]] == ["finished", "diverged", "finished"]
    # Frozen in epoch 1, the diverged replica's 3 steps of epoch 2 are skipped.
    assert s_all["replicas"][1]["stopped_epoch"] == 1
    assert s_all["skipped_replica_steps"] == 3
    assert s_all["skipped_replica_evals"] == 1  # nor is it evaluated after epoch 2
    with_h, without_h = history(str(tmp_path / "with")), history(str(tmp_path / "without"))
    for epoch in (1, 2):
        for r in (0, 2):
            assert_same_metrics(with_h[(r, epoch)], without_h[(r, epoch)], atol=1e-6, rtol=1e-6)
    # The diverged replica keeps its last finite state: the checkpoint holds no NaN.
    ckpt = checkpoint.CohortCheckpoints(str(tmp_path / "with" / "checkpoints"))
    host = ckpt.restore_host(ckpt.latest_step())
    assert host["status"][1] == "diverged"
    ckpt.close()


def test_checkpoint_written_in_the_background_from_copies(tmp_path):
    # save() returns before the files are written; the caller then frees its buffers, as
    # run_epoch does with the stacked state. What is read back is what was saved.
    state = {"w": jnp.arange(6.0).reshape(2, 3), "n": {"b": jnp.ones((2,), jnp.int32)}}
    best = {"w": jnp.full((2, 3), 7.0)}
    expect = jax.tree.map(np.asarray, (state, best))
    ckpt = checkpoint.CohortCheckpoints(str(tmp_path / "checkpoints"))
    ckpt.save(3, state, best, {"epoch": 3})
    jax.tree.map(lambda x: x.delete(), (state, best))
    assert ckpt.latest_step() == 3  # waits for the write
    got_state, got_best, host = ckpt.restore(3, *jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), expect))
    jax.tree.map(np.testing.assert_array_equal, (got_state, got_best), expect)
    assert host == {"epoch": 3}
    ckpt.close()


def tracker_stop(rows, monitor, patience, start):
    """The epoch the replica tracker (whose rules tests/test_tracker.py checks by hand) stops a
    replica evaluated every epoch with these validation rows: what the run must have done."""
    t = Tracker.start(Policy(epochs=len(rows) + 1, monitor=monitor, patience=patience,
                             start=start), 1)
    for epoch, row in enumerate(rows, 1):
        t.evaluated([row], epoch)
        if t.replicas[0].status == "stopped":
            return epoch
    return None


def test_early_stopping_counts_patience_from_its_start_epoch(tfds_dir, tmp_path, caplog):
    c = tiny_config(tfds_dir, epochs=7)
    c.model.norm = "none"  # no batch statistics: a replica that does not learn is constant
    c.optim.name = "sgd"
    c.train.early_stopping, c.train.early_stopping_start = 2, 3
    # Replica 0's steps (1e-30 x gradient) leave its float32 weights as they are: its
    # validation loss never improves after epoch 1, so without a start epoch it would stop
    # at epoch 3 (bad evaluations at 2 and 3); from epoch 3 on, at epoch 5.
    s = train.train_and_evaluate(c, str(tmp_path), [{"optim.learning_rate": 1e-30},
                                                    {"optim.learning_rate": 3e-3, "seed": 1}])
    h = history(str(tmp_path))
    frozen = [h[(0, e)]["loss"] for e in range(1, 6)]
    assert len(set(frozen)) == 1  # the premise: the loss is exactly constant
    assert s["replicas"][0]["status"] == "stopped" and s["replicas"][0]["stopped_epoch"] == 5
    assert (0, 6) not in h  # a stopped replica is no longer evaluated
    learner = [h[(1, e)] for e in range(1, 8) if (1, e) in h]
    assert s["replicas"][1]["stopped_epoch"] == tracker_stop(learner, "loss", 2, 3)
    # Monitoring Dice instead: the learner's stop follows its Dice (higher is better).
    c.train.early_stopping_monitor, c.train.early_stopping_start = "dice", 0
    with caplog.at_level(logging.INFO):
        s = train.train_and_evaluate(c, str(tmp_path / "dice"), [{"optim.learning_rate": 3e-3,
                                                                  "seed": 1}])
    h = history(str(tmp_path / "dice"))
    rows = [h[(0, e)] for e in range(1, 8) if (0, e) in h]
    stop = s["replicas"][0]["stopped_epoch"]
    assert stop == tracker_stop(rows, "dice", 2, 0)
    # The progress line of the epoch that stopped the last replica shows its training loss.
    line = [r.getMessage() for r in caplog.records if f"epoch {stop}/7 |" in r.getMessage()]
    assert stop and len(line) == 1 and "replicas alive 0/1" in line[0], line
    assert f"train loss {h[(0, stop)]['train_loss']:.4f}" in line[0], line
    assert tracker_stop(rows, "dice", 2, 0) != tracker_stop(rows, "loss", 2, 0)


def test_best_epoch_by_per_image_dice(tfds_dir, tmp_path):
    c = tiny_config(tfds_dir, epochs=4)
    c.eval.select = "dice_image"
    s = train.train_and_evaluate(c, str(tmp_path), [{"seed": 0}, {"seed": 1}])
    h = history(str(tmp_path))
    for r in range(2):
        per_image = [h[(r, e)]["dice_image"] for e in range(1, 5)]
        assert s["replicas"][r]["best_epoch"] == 1 + int(np.argmax(per_image))
        assert s["replicas"][r]["best"]["dice_image"] == max(per_image)
        # Both means are recorded whichever selects; the best has the full set, with
        # HD95's unit.
        assert {"dice", "dice_image", "iou_image"} <= set(h[(r, 1)])
        assert {"bf", "bf_image", "hd95_missed"} <= set(s["replicas"][r]["best"])
        assert s["replicas"][r]["best"]["hd95_unit"] == "px"


def test_spacing_that_does_not_fit_is_refused_and_the_corrected_run_starts(tfds_dir, tmp_path):
    c = tiny_config(tfds_dir, epochs=1)
    c.data.spacing = (10.0, 1.5, 1.5)  # a volume's spacing for 2-D images
    with pytest.raises(JaxsegError, match=r"data.spacing=\(10.0, 1.5, 1.5\): give 2"):
        train.train_and_evaluate(c, str(tmp_path))
    # Nothing was recorded before the data were checked: the corrected run is not refused.
    assert not os.path.exists(os.path.join(str(tmp_path), "run.json"))
    c.data.spacing = (1.5, 1.5)
    s = train.train_and_evaluate(c, str(tmp_path))
    assert s["replicas"][0]["best"]["hd95_unit"] == "mm"


def test_frozen_replica_does_not_change(tfds_dir):
    c = tiny_config(tfds_dir)
    from jaxseg.data import datasets

    data = datasets.load(c.data)
    built = build_cohort(c, REPLICAS[:2], data)
    cohort, hp = built.cohort, built.hp
    assert cohort.steps == 3  # 20 images, batch 8
    state = cohort.init(hp)
    before = jax.tree.map(np.asarray, state)
    plan = cohort.plan(hp["seed"], built.member_d, 0)
    state, acc = cohort.run_epoch(state, hp, jnp.full((2,), 1e-2), jnp.array([True, False]),
                                  plan, built.images, built.labels)
    after = jax.tree.map(np.asarray, state)
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a[0], b[0]),
                                           before["params"], after["params"]))
    frozen = jax.tree.leaves(jax.tree.map(lambda a, b: np.array_equal(a[1], b[1]),
                                          before, after))
    assert any(changed) and all(frozen)
    assert float(acc["count"][1]) == 0.0


def run_cli(args, **kw):
    return subprocess.run([sys.executable, "-m", "jaxseg.main", *args], cwd=ROOT,
                          capture_output=True, text=True, **kw)


def test_resume_after_kill_equals_uninterrupted(tfds_dir, tmp_path, xla_cache):
    # Successive halving with its one rung at epoch 4 of 5: the 3 replicas all train epochs
    # 1-4, the rung prunes 2 of them (3 // 3 = 1 goes on) after the kill, in the resumed
    # process, and its decision must be the uninterrupted run's.
    base = ["train", "--config=experiments/quickstart.py", f"--config.data.tfds_dir={tfds_dir}",
            "--config.train.halving.min_epochs=4", "--config.train.halving.eta=3",
            "--config.train.epochs=5", "--config.data.phantom.num_train=32",
            "--config.data.phantom.num_val=16", "--config.data.phantom.size=32",
            "--config.data.image_size=32", "--config.model.base_width=4",
            "--config.model.depth=2", "--config.train.strategy=sequential",  # compiles fastest
            f"--compilation_cache={xla_cache}"]
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    assert run_cli(base + [f"--workdir={full}"]).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "jaxseg.main", *base, f"--workdir={killed}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not os.path.isdir(os.path.join(killed, "checkpoints", "2")):
        assert proc.poll() is None and time.time() < deadline, "run ended before the kill"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = run_cli(base + [f"--workdir={killed}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from the checkpoint of epoch" in resumed.stderr
    epoch = int(resumed.stderr.split("resumed from the checkpoint of epoch ")[1].split()[0])
    assert 2 <= epoch < 5
    a, b = history(full), history(killed)
    assert sorted(a) == sorted(b)  # no duplicated or missing records
    for key in a:
        assert_same_metrics(a[key], b[key], atol=1e-6, rtol=1e-6)
    summaries = [summary(w) for w in (full, killed)]
    for x, y in zip(*(s["replicas"] for s in summaries), strict=True):
        assert_same_metrics(x["best"], y["best"], atol=1e-6, rtol=1e-6, keys=METRICS[1:] + FULL)
    status = [[(r["status"], r["stopped_epoch"]) for r in s["replicas"]] for s in summaries]
    assert status[0] == status[1] and sorted(status[0]).count(("pruned", 4)) == 2, status
    assert summaries[0]["replica_steps"] == summaries[1]["replica_steps"] == (3 * 4 + 1) * 2


def test_quickstart_main_job(tmp_path, tfds_dir):
    workdir = str(tmp_path / "qs")
    t0 = time.time()
    # A fresh compilation cache: the 3-minute budget must hold on a fresh machine.
    out = run_cli(["train", "--config=experiments/quickstart.py", f"--workdir={workdir}",
                   f"--config.data.tfds_dir={tfds_dir}",
                   f"--compilation_cache={tmp_path / 'xla'}"])
    seconds = time.time() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    assert seconds < 180, f"quickstart took {seconds:.0f}s"
    assert "epoch 8/8 | replicas alive 3/3" in out.stderr and "ETA" in out.stderr
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    assert [r["status"] for r in summary["replicas"]] == ["finished"] * 3
    assert all(r["best"]["dice"] > 0.5 for r in summary["replicas"])
    assert len(history(workdir)) == 3 * 8
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "8"))
    with open(os.path.join(workdir, "replicas.json")) as f:
        wd = json.load(f)["hyperparameters"]["optim.weight_decay"]
    assert wd == pytest.approx([0.0, 1e-4, 1e-3])


@pytest.mark.parametrize("flag, message", [
    ("--config.optim.name=lamb", "unknown optim.name 'lamb'"),
    ("--config.loss.weights.dise=1.0", "bad --config override"),
    ("--config.data.name=cmr96", "data folder not found"),
    ("--config.eval.bf_convention=matlb", "eval.bf_convention='matlb'"),
])
def test_cli_errors_are_one_line(flag, message, tmp_path, tfds_dir):
    extra = [flag]
    if "cmr96" in flag:
        extra.append("--config.data.source_dir=/nonexistent/cmr96")
    out = run_cli(["train", "--config=experiments/quickstart.py", f"--workdir={tmp_path}",
                   f"--config.data.tfds_dir={tfds_dir}", *extra])
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("jaxseg: error:") and message in last
    assert "Traceback" not in out.stderr


def test_changed_config_refuses_old_workdir(tfds_dir, tmp_path):
    c = tiny_config(tfds_dir, epochs=1)
    train.train_and_evaluate(c, str(tmp_path), [{}])
    c.optim.learning_rate = 0.5
    with pytest.raises(JaxsegError, match=r"holds a different run \(differs in "
                                          r"config.optim.learning_rate: 0.003 recorded, "
                                          r"0.5 now\)"):
        train.train_and_evaluate(c, str(tmp_path), [{}])


def test_structural_override_is_refused(tfds_dir, tmp_path):
    with pytest.raises(JaxsegError, match="changes the compiled program"):
        train.train_and_evaluate(tiny_config(tfds_dir), str(tmp_path),
                                 [{"optim.name": "sgd"}, {}])


def test_bench_variants_are_timed_side_by_side(tfds_dir):
    c = tiny_config(tfds_dir)
    # The same program in two variants that change only XLA's kernels: the same losses up
    # to rounding, every program timed in each round, ratios to the first variant.
    rows = bench.variants_table(c, {"tuned": ({}, {}),
                                    "xla": ({"train.xla_options": "default"}, {})}, repeats=2)
    for r in rows:
        assert len(r["steps_s"]) == 2 and r["flops"] > 0 and r["compile_s"] > 0
        assert r["ratio"] == pytest.approx(r["step_s"] / rows[0]["step_s"])
    assert rows[1]["loss_sum"] == pytest.approx(rows[0]["loss_sum"], rel=1e-4)


def test_compiler_options_per_backend():
    tuned = replicas.compiler_options("tuned", "cpu")
    assert tuned == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
    assert replicas.compiler_options("default", "cpu") == {}
    assert replicas.compiler_options("tuned", "gpu") == {}
    with pytest.raises(JaxsegError, match="train.xla_options"):
        replicas.compiler_options("fastest", "cpu")
