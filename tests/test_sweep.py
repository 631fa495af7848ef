"""Sweeps: experiment files load/expand/plan, the planner's grouping, smoke sweeps through
`jaxseg sweep`, kill + re-run equals an uninterrupted sweep, result tables by hand."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import EXPERIMENTS, STUDIES

from jaxseg import configs, hparams, workdir
from jaxseg.sweep import expand, plan, results

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_experiment_loads_expands_and_plans(path):
    module, _ = expand.load_experiment(path)
    assert module.__doc__ and "Command" in module.__doc__ and "jaxseg " in module.__doc__
    args = [None, "smoke"] if path in STUDIES else [None]
    for arg in args:
        config = module.get_config(arg) if arg else module.get_config()
        runs = expand.expand(module, arg)
        cohorts = plan.plan(config, runs)
        assert sum(len(c.runs) for c in cohorts) == len(runs) >= 1
        assert sorted(i for c in cohorts for i in c.runs) == list(range(len(runs)))


def effective(config) -> str:
    """What a run computes, as JSON: AdamW is Adam with decoupled decay, and the decay mode
    means nothing without decay."""
    c = json.loads(config.to_json_best_effort())
    o = c["optim"]
    decoupled = o["weight_decay_mode"] == "decoupled" or (
        o["weight_decay_mode"] == "default" and o["name"] == "adamw")
    o["name"] = "adam" if o["name"] == "adamw" else o["name"]
    o["weight_decay_mode"] = (decoupled if o["weight_decay"] else None)
    return json.dumps(c, sort_keys=True)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=os.path.basename)
def test_no_two_runs_compute_the_same_thing(path):
    # optimizer_lr once gave Adam AdamW's decoupled decay: two optimizers, one computation.
    module, _ = expand.load_experiment(path)
    for arg in ([None, "smoke"] if path in STUDIES else [None]):
        config = module.get_config(arg) if arg else module.get_config()
        runs = expand.expand(module, arg)
        seen = {}
        for i, run in enumerate(runs):
            key = effective(hparams.apply_overrides(
                config, {k: v for k, v in run.items() if k != "label"}))
            assert key not in seen, f"{path}:{arg} runs {seen.get(key)} and {i} are the same"
            seen[key] = i


def grid_runs(optimizers):
    runs = []

    def add(**overrides):
        runs.append(overrides)

    for opt in optimizers:
        for loss in ({"ce": 1.0}, {"dice": 1.0}, {"focal": 1.0}, {"ce": 1.0, "dice": 1.0},
                     {"tversky": 0.5, "dice": 1.0, "bce": 0.5}):
            expand.grid(add, {"optim.weight_decay": [0.0, 1e-5, 1e-4, 1e-3]}, seeds=2,
                        **{"optim.name": opt, "loss.weights": loss})
    return runs


def test_planner_groups_numeric_differences():
    config = configs.study("smoke")
    one = plan.plan(config, grid_runs(["adam"]))
    assert [len(c.runs) for c in one] == [40]
    # Every loss is a weighting of the union of terms; absent terms weigh 0.
    c = one[0]
    assert set(c.config.loss.weights) == {"ce", "bce", "focal", "dice", "tversky"}
    assert c.overrides[0]["loss.weights.ce"] == 1.0 and c.overrides[0]["loss.weights.dice"] == 0
    two = plan.plan(config, grid_runs(["adam", "sgd"]))
    assert [len(c.runs) for c in two] == [40, 40]
    assert {c.config.optim.name for c in two} == {"adam", "sgd"}
    # A cap splits a cohort.
    assert [len(c.runs) for c in plan.plan(config, grid_runs(["adam"]), max_replicas=16)] == \
        [16, 16, 8]
    # Folds are replicas too: 2 learning rates x 5 folds x 2 seeds is one cohort of 20.
    runs = []
    expand.grid(lambda **o: runs.append(o), {"optim.learning_rate": [1e-3, 1e-2]}, seeds=2,
                folds=5)
    assert [len(c.runs) for c in plan.plan(config, runs)] == [20]


def test_memory_split_counts_live_activations(monkeypatch):
    """A cohort is split by its memory estimate: ``sequential`` holds every replica's state
    (with a second copy of parameters and moments while it splits the epoch into rounds) but
    one replica's activations, the other strategies every replica's activations."""
    config = configs.study("smoke")
    config.train.devices = 1  # one device's budget, however many devices the host shows
    state, act, _ = plan.estimate(config)
    assert state > 0 and act > 0
    budget = 3 * (state + act) + 1  # room for 3 replicas with their activations
    monkeypatch.setattr(plan, "device_memory", lambda: budget)
    runs = grid_runs(["adam"])  # 40 runs, one signature
    seq_state = state * 7 / 5  # plus a second copy of parameters and Adam moments
    for strategy, limit in (("unroll", 3), ("sequential", int((budget - act) // seq_state))):
        config.train.strategy = strategy
        cohorts = plan.plan(config, runs, max_replicas=0)
        assert [len(c.runs) for c in cohorts][0] == min(limit, 40)
        assert sum(len(c.runs) for c in cohorts) == 40
        live = 1 if strategy == "sequential" else len(cohorts[0].runs)
        per = seq_state if strategy == "sequential" else state
        assert cohorts[0].memory == pytest.approx(per * len(cohorts[0].runs) + act * live)
        assert cohorts[0].memory <= budget


def test_configuration_table_by_hand():
    rows = [{"run": 0, "cohort": "c000", "optim.weight_decay": 0.0, "seed": 0, "status": "f",
             "best_epoch": 1, "dice": 0.8, "val_loss": 0.5},
            {"run": 1, "cohort": "c000", "optim.weight_decay": 0.0, "seed": 1, "status": "f",
             "best_epoch": 1, "dice": 0.6, "val_loss": 0.7},
            {"run": 2, "cohort": "c000", "optim.weight_decay": 1e-4, "seed": 0, "status": "f",
             "best_epoch": 1, "dice": 0.9, "val_loss": 0.4}]
    table = results.configurations(rows, "dice")
    assert [t["optim.weight_decay"] for t in table] == [1e-4, 0.0]  # sorted by Dice
    assert table[1]["n"] == 2
    assert table[1]["dice_mean"] == pytest.approx(0.7)
    assert table[1]["dice_std"] == pytest.approx(0.1414213, rel=1e-5)  # sample std of .8,.6
    md = results.markdown(rows, table)
    assert "0.7000 ± 0.1414" in md
    assert table[0]["dice_std"] is None  # one run: no spread, shown as the bare mean
    assert "| 0.9000 |" in md


def test_paired_tests_and_holm_by_hand():
    from jaxseg.sweep import compare
    # Holm, m = 3: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> max(0.06, 0.04).
    assert compare.holm([None, 0.01, 0.04, 0.03]) == pytest.approx([None, 0.03, 0.06, 0.06])
    # Paired t over 3 seeds: differences -0.1, -0.1, -0.05: mean -1/12, sd 0.028868, t = -5
    # with 2 df; two-sided p = 1 - 5 / sqrt(5^2 + 2) = 0.037750 (the t(2) tail in closed form).
    p = compare.paired_seeds({0: 0.8, 1: 0.9, 2: 0.85}, {0: 0.7, 1: 0.8, 2: 0.8, 3: 0.1})
    assert p == pytest.approx(1 - 5 / 27 ** 0.5, rel=1e-6)
    assert compare.paired_seeds({0: 0.8}, {0: 0.7}) is None  # one pair: no test
    # Wilcoxon, exact: 5 differences all positive -> two-sided p = 2 / 2^5 = 0.0625, r = +1.
    best = {str(i): 0.5 for i in range(5)}
    res = compare.paired_images(best, {str(i): 0.5 + 0.1 * (i + 1) for i in range(5)})
    assert res["p"] == pytest.approx(0.0625) and res["r"] == 1.0
    assert res["delta"] == pytest.approx(0.3) and res["cases"] == 5
    # Differences -0.1, +0.2, -0.3 ... -0.6: ranks 1..6, W+ = 2, W- = 19; P(W+ <= 2) = 3/64
    # (the rank sets {}, {1}, {2}), two-sided 6/64; r = (2 - 19) / 21.
    other = {str(i): 0.5 + d for i, d in enumerate([-0.1, 0.2, -0.3, -0.4, -0.5, -0.6])}
    res = compare.paired_images({str(i): 0.5 for i in range(6)}, other)
    assert res["p"] == pytest.approx(6 / 64) and res["r"] == pytest.approx(-17 / 21)


def test_configuration_table_marks_what_cannot_be_told_from_the_best():
    """3 configurations x 2 seeds, 6 validation images; each expected value worked out by hand."""
    def rows_of(run, lr, dice, cases):
        return [{"run": run + s, "cohort": "c0", "optim.learning_rate": lr, "seed": s,
                 "status": "finished", "best_epoch": 3, "dice": dice[s], "val_loss": 0.1,
                 "case_dice": {str(i): v for i, v in enumerate(cases[s])}} for s in (0, 1)]
    base = [0.9, 0.8, 0.7, 0.9, 0.8, 0.7]
    rows = (rows_of(0, 0.01, [0.90, 0.88], [base, base])
            # Worse on every image by 0.1 .. 0.6 (seed means): Wilcoxon p = 2/64 = 0.03125.
            + rows_of(2, 0.1, [0.70, 0.69], [[b - 0.1 * (i + 1) for i, b in enumerate(base)]] * 2)
            # Mixed per-image differences: +-0.01 alternating, p = 1 (W+ = W-).
            + rows_of(4, 0.001, [0.89, 0.86],
                      [[b + (0.01 if i % 2 else -0.01) for i, b in enumerate(base)]] * 2))
    rows[-1]["status"], rows[-1]["stopped_epoch"] = "pruned", 2
    table = results.configurations(rows, "dice")
    assert [t["optim.learning_rate"] for t in table] == [0.01, 0.001, 0.1]
    assert [t["vs_best"] for t in table] == ["best", "tied", "worse"]
    # Holm over the 2 comparisons: images p 1.0 and 0.03125 -> 0.0625 and 1.0 (the larger
    # is max(2 x 0.03125, 1 x 1.0)); the worse one's seed t-test: differences -0.2, -0.19.
    assert table[2]["p_images"] == pytest.approx(0.0625) and table[1]["p_images"] == 1.0
    assert table[2]["delta_image"] == pytest.approx(-0.35) and table[2]["r_image"] == -1.0
    # Seeds: t(1) two-sided p = 1 - (2/pi) atan|t|. Worse: differences -0.2, -0.19, t = -39,
    # p = 0.01632; tied: -0.01, -0.02, t = -3, p = 0.2048. Holm: 2 x 0.01632, then max(., 0.2048).
    import math
    p_worse, p_tied = (1 - 2 / math.pi * math.atan(t) for t in (39, 3))
    assert table[2]["p_seeds"] == pytest.approx(2 * p_worse, rel=1e-4)
    assert table[1]["p_seeds"] == pytest.approx(p_tied, rel=1e-4)
    assert table[1]["pruned"] == 1 and table[1]["pruned_epoch"] == 2
    md = results.markdown(rows, table)
    assert "≈ best" in md and "pruned at" in md and "epoch 2" in md
    assert "case_dice" not in md


def test_run_rows_show_base_value_of_unswept_field():
    """A run that leaves a swept field at the base config shows the base value, not "-"."""
    config = configs.study("smoke")
    runs = [{"label": "none", "augment.hflip": False}, {"label": "rot", "augment.rotation": 20.0}]
    plans = plan.plan(config, runs)
    summaries = {p.name: {"wall_time_s": 1.0, "replicas": [
        {"status": "finished", "best_epoch": 1, "best": {"dice": 0.5, "loss": 0.1}}] * len(p.runs)}
        for p in plans}
    rows = results.run_rows(plans, runs, summaries, ["bg", "RV", "MYO", "LV"])
    assert [r["augment.hflip"] for r in rows] == [False, config.augment.hflip]
    assert [r["augment.rotation"] for r in rows] == [config.augment.rotation, 20.0]
    assert [r["label"] for r in rows] == ["none", "rot"]
    # Rows made elsewhere (jaxseg report) may lack a column: the tables take every row's.
    del rows[0]["augment.rotation"]
    header = results.markdown(rows, results.configurations(rows)).splitlines()[6]
    assert "augment.rotation" in header


def metric_rows(workdir):
    with open(os.path.join(workdir, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.pop("wall_time_s")
    return rows


def assert_same_rows(a, b):
    """Two sweeps' results.csv rows agree: metrics to float noise, everything else exactly."""
    for ra, rb in zip(a, b, strict=True):
        for k in ra:
            if k in ("dice", "val_loss", "iou", "bf", "dice_RV"):
                assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-6, abs=1e-7), k
            else:
                assert ra[k] == rb[k], k


def test_killed_sweep_resumes_and_skips_finished_cohorts(jaxseg, tfds_dir, xla_cache,
                                                         tmp_path):
    args = ["sweep", f"--config={ROOT}/experiments/upsampling.py:smoke",
            "--config.train.epochs=3"]
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    assert jaxseg(args + [f"--workdir={full}"]).returncode == 0
    cmd = [sys.executable, "-m", "jaxseg.main", *args, f"--workdir={killed}",
           f"--config.data.tfds_dir={tfds_dir}", f"--compilation_cache={xla_cache}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = os.path.join(killed, "cohorts", "c001", "checkpoints", "1")
    deadline = time.time() + 300
    while not os.path.isdir(target):
        assert proc.poll() is None and time.time() < deadline, "sweep ended before the kill"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # `jaxseg inspect` on the killed sweep: the first cohort finished, the second interrupted.
    listing = subprocess.run([sys.executable, "-m", "jaxseg.main", "inspect",
                              f"--workdir={killed}"], cwd=ROOT, capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert "c000: finished, 1 replica(s)" in listing.stdout
    assert "c001: interrupted, 1 replica(s), checkpoint steps [1]" in listing.stdout
    wd = workdir.Workdir(killed)
    assert [(r.id, r.status, r.epoch) for r in wd.replicas] == [
        ("0", "finished", 3), ("1", "interrupted", 1)]
    again = jaxseg(args + [f"--workdir={killed}"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[c000 1/2] already finished; skipped" in again.stderr
    assert "resumed from the checkpoint of epoch" in again.stderr
    a, b = metric_rows(full), metric_rows(killed)
    assert len(a) == len(b) == 2
    assert_same_rows(a, b)


def test_a_grid_shared_between_launches_by_cohort(jaxseg, tmp_path):
    args = ["sweep", f"--config={ROOT}/experiments/upsampling.py:smoke", f"--workdir={tmp_path}",
            "--config.train.epochs=1"]
    bad = jaxseg(args + ["--cohorts=c000,c009"])
    assert bad.returncode == 2
    assert "--cohorts names c009, not in this plan; its cohorts are c000, c001" in bad.stderr
    first = jaxseg(args + ["--cohorts=c001"])
    assert first.returncode == 0, first.stderr[-3000:]
    # Only c001 trained; no tables while c000 is left.
    assert not (tmp_path / "cohorts" / "c000").exists()
    assert (tmp_path / "cohorts" / "c001" / "summary.json").exists()
    assert not (tmp_path / "results.csv").exists()
    assert "1 of 2 cohorts finished; left: c000" in first.stdout
    second = jaxseg(args + ["--cohorts=c000"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "[c001 2/2] already finished; skipped" in second.stderr
    with open(tmp_path / "results.csv") as f:
        assert sorted(r["cohort"] for r in csv.DictReader(f)) == ["c000", "c001"]


def test_changed_sweep_refuses_workdir(jaxseg, tmp_path):
    args = ["sweep", f"--config={ROOT}/experiments/upsampling.py:smoke", f"--workdir={tmp_path}",
            "--config.train.epochs=1"]
    assert jaxseg(args).returncode == 0
    out = jaxseg(args[:-1] + ["--config.train.epochs=2"])
    assert out.returncode == 2
    assert "holds a different sweep" in out.stderr.strip().splitlines()[-1]


def test_workdir_of_an_older_jaxseg_resumes_if_added_fields_keep_their_default(jaxseg,
                                                                                tmp_path):
    import json

    args = ["sweep", f"--config={ROOT}/experiments/upsampling.py:smoke", f"--workdir={tmp_path}",
            "--config.train.epochs=1"]
    assert jaxseg(args).returncode == 0
    # What a jaxseg without train.early_stopping_start recorded.
    for path in [tmp_path / "sweep.json", *tmp_path.glob("cohorts/*/run.json")]:
        meta = json.loads(path.read_text())
        del meta["config"]["train"]["early_stopping_start"]
        path.write_text(json.dumps(meta))
    again = jaxseg(args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "[c001 2/2] already finished; skipped" in again.stderr
    changed = jaxseg(args + ["--config.train.early_stopping_start=5"])
    assert changed.returncode == 2 and "holds a different sweep" in changed.stderr


def test_added_defaults_are_dropped_by_hand():
    defaults = {"train": {"a": 1, "new": 0}, "other": 2}
    recorded = {"train": {"a": 3}, "x": 1}
    assert configs.without_added_defaults(recorded, {"train": {"a": 3, "new": 0}, "x": 1},
                                          defaults) == recorded
    # A non-default value of the new field, or a field jaxseg does not know, is kept.
    assert configs.without_added_defaults(recorded, {"train": {"a": 3, "new": 5}},
                                          defaults) == {"train": {"a": 3, "new": 5}}
    assert configs.without_added_defaults(recorded, {"train": {"a": 3}, "y": 0},
                                          defaults) == {"train": {"a": 3}, "y": 0}


def test_recorded_config_gets_fields_added_since_at_their_defaults():
    # A run.json written before data.spacing, eval.bf_convention and loss.ecn_counts existed,
    # with its own loss terms: the new fields take their defaults, the terms stay its own.
    recorded = json.loads(configs.default().to_json_best_effort())
    del recorded["data"]["spacing"], recorded["eval"]["bf_convention"]
    del recorded["loss"]["ecn_counts"]
    recorded["loss"]["weights"] = {"wce": 1.0}
    recorded["eval"]["bf_tolerance"] = 3.0
    c = configs.with_added_defaults(recorded)
    assert tuple(c.data.spacing) == () and c.eval.bf_convention == "jaxseg"
    assert c.loss.ecn_counts == "percent" and c.eval.bf_tolerance == 3.0
    assert dict(c.loss.weights) == {"wce": 1.0}


def test_time_estimate_by_hand():
    config = configs.study("smoke")
    config.data.phantom.num_train, config.data.phantom.num_val = 16, 8
    config.train.batch_size, config.train.epochs = 8, 2
    runs = [{"data.fraction": 0.5}, {"data.fraction": 1.0}]
    # The scan loop runs whole epochs on the device: it cannot skip a replica's idle steps.
    for strategy, loop, steps in (("sequential", "step", 1 + 2), ("unroll", "step", 2 + 2),
                                  ("sequential", "scan", 2 + 2)):
        config.train.strategy, config.train.loop = strategy, loop
        (p,) = plan.plan(config, runs)
        # Per epoch: each replica's own steps (16 or 8 images / batch 8: 2 or 1 steps; under
        # unroll both run 2) plus a forward pass (1/3 step) over 8 val images per replica.
        want = (steps + 2 * (8 / 8) / 3) * 2 * p.step_flops / 1e9 + 30.0
        assert plan.cohort_seconds(p, 1e9, 30.0) == pytest.approx(want)


def test_calibrated_estimate_is_the_timed_step_by_hand():
    from jaxseg import bench

    config = configs.study("smoke")
    config.train.batch_size, config.train.epochs = 8, 3
    runs = [{"optim.name": "adam"}, {"optim.name": "sgd"}, {"model.base_width": 8}]
    plans = plan.plan(config, runs)
    assert [len(p.runs) for p in plans] == [1, 1, 1]
    timings = bench.calibrate(plans, repeats=2)
    # Adam and SGD cohorts share one architecture, hence one timing; base width 8 its own.
    assert timings["c000"] is timings["c001"] and timings["c002"] is not timings["c000"]
    for p in plans:
        t = timings[p.name]
        assert t["step_s"] > 0 and t["compile_s"] > 0
        # 16 training images / batch 8 = 2 steps and a forward pass over 8 val images
        # (1/3 of a step) per epoch, 3 epochs, at the timed step, plus the timed compile.
        want = (2 + (8 / 8) / 3) * 3 * t["step_s"] + t["compile_s"]
        assert plan.cohort_seconds(p, t["rate"], t["compile_s"]) == pytest.approx(want)
    text = plan.describe(plans, len(runs), timings)
    assert text.count("s/step timed") == 3 and "timed on this machine now" in text


def test_time_estimate_counts_a_folders_images(tmp_path):
    from jaxseg.data import phantom

    config = configs.study("smoke")
    config.data.name, config.data.source_dir = "folder", str(tmp_path)
    assert plan.split_sizes(config) == (100, 20)  # nothing there yet: counted as cmr96
    phantom.write_folder(str(tmp_path / "train"), phantom.phantom_split(0, 5, 16), (0, 1, 2, 3))
    phantom.write_folder(str(tmp_path / "val"), phantom.phantom_split(1, 3, 16), (0, 1, 2, 3))
    assert plan.split_sizes(config) == (5, 3)
    assert "counted as" not in plan.describe(plan.plan(config, [{}]), 1)


def test_dry_run_prints_plan(jaxseg):
    out = jaxseg(["sweep", f"--config={ROOT}/experiments/optimizer_lr.py", "--dry_run"])
    assert out.returncode == 0
    assert "35 runs in 7 cohort(s)" in out.stdout and "MiB" in out.stdout


def test_grid_halving_estimate_and_common_rungs_by_hand():
    from jaxseg.errors import JaxsegError
    from jaxseg.sweep import grid_halving

    config = configs.study("smoke")
    config.train.epochs, config.train.strategy = 8, "sequential"
    config.train.halving.min_epochs, config.train.halving.eta = 2, 2
    runs = [{"optim.name": o, "optim.learning_rate": lr}
            for o in ("adam", "sgd") for lr in (1e-3, 1e-2, 1e-1)]
    plans = plan.plan(config, runs)
    assert [len(p.runs) for p in plans] == [3, 3]
    # Rungs 2 and 4. Per cohort: 3 x 2 epochs, 1 x 2 (to 4), 1 x 4 (to 8) = 12 of 3 x 8.
    assert plan.halving_share(plans[0], plans) == pytest.approx(12 / 24)
    # The grid's 6 ranked together: 6 x 2, 3 x 2, then 1 x 4 = 22 of 6 x 8.
    config.train.halving.group = "grid"
    plans = plan.plan(config, runs)
    assert plan.halving_share(plans[1], plans) == pytest.approx(22 / 48)
    assert "(of the grid's: ranked together)" in plan.describe(plans, len(runs))
    grid_halving.check_plans(plans)
    # Rungs differ when the epochs do: refused, naming the field and two cohorts.
    mixed = plan.plan(config, [{"train.epochs": 8}, {"train.epochs": 12}])
    with pytest.raises(JaxsegError, match=r"train.epochs differs between cohorts "
                                          r"\(c000: 8, c001: 12\)"):
        grid_halving.check_plans(mixed)
    # A cohort ranking itself inside a grid-ranked sweep would prune twice: refused too.
    groups = plan.plan(config, [{"optim.name": "adam", "train.halving.group": "cohort"},
                                {"optim.name": "sgd"}])
    with pytest.raises(JaxsegError, match=r"train.halving.group differs between cohorts "
                                          r"\(c000: cohort, c001: grid\)"):
        grid_halving.check_plans(groups)


def history_dice(cohort_dir):
    """{(replica, epoch): dice} of a cohort's history."""
    out = {}
    with open(os.path.join(cohort_dir, "history.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            out[(r["replica"], r["epoch"])] = r["dice"]
    return out


def test_grid_halving_ranks_every_cohort_together_and_resumes(jaxseg, tfds_dir, xla_cache,
                                                              tmp_path):
    # optimizer_lr's smoke grid: Adam and AdamW (two cohorts) x two rates, 5 epochs, rungs
    # at 2 and 4 (eta 2). Ranked as one grid: 4 compete at epoch 2 and 2 go on, then 1.
    # (Ranked per cohort, each cohort would keep one run to the end: two would finish.)
    args = ["sweep", f"--config={ROOT}/experiments/optimizer_lr.py:smoke",
            "--config.train.epochs=5", "--config.train.halving.min_epochs=2",
            "--config.train.halving.eta=2", "--config.train.halving.group=grid"]
    full, killed = str(tmp_path / "full"), str(tmp_path / "killed")
    out = jaxseg(args + [f"--workdir={full}"])
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(full, "results.json")) as f:
        runs = sorted(json.load(f)["runs"], key=lambda r: r["run"])
    with open(os.path.join(full, "plan.json")) as f:
        cohorts = json.load(f)["cohorts"]
    assert [len(c["runs"]) for c in cohorts] == [2, 2]
    # The decisions by hand from the histories: each run's best Dice up to the rung.
    dice = {}
    for c in cohorts:
        for (replica, epoch), d in history_dice(os.path.join(full, "cohorts", c["name"])).items():
            dice[(c["runs"][replica], epoch)] = d
    alive, want = [r["run"] for r in runs], {}
    for rung in (2, 4):
        best = {r: max(d for (q, e), d in dice.items() if q == r and e <= rung) for r in alive}
        kept = sorted(alive, key=lambda r: -best[r])[:max(1, len(alive) // 2)]
        want.update({r: rung for r in alive if r not in kept})
        alive = kept
    assert [(r["status"], r["stopped_epoch"]) for r in runs] == [
        ("pruned", want[r["run"]]) if r["run"] in want else ("finished", None) for r in runs]
    assert sum(r["status"] == "finished" for r in runs) == 1
    with open(os.path.join(full, "halving.json")) as f:
        record = json.load(f)["rungs"]
    assert sorted(record) == ["2", "4"]
    assert sorted(record["2"]["pruned_runs"] + record["4"]["pruned_runs"]) == sorted(want)
    # kill -9 right after the first rung's decision was recorded, then resume: the same runs
    # pruned at the same epochs, the same metrics.
    cmd = [sys.executable, "-m", "jaxseg.main", *args, f"--workdir={killed}",
           f"--config.data.tfds_dir={tfds_dir}", f"--compilation_cache={xla_cache}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(killed, "halving.json")):
        assert proc.poll() is None and time.time() < deadline, "sweep ended before the kill"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = jaxseg(args + [f"--workdir={killed}"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from the checkpoint of epoch" in again.stderr  # it did resume
    with open(os.path.join(killed, "halving.json")) as f:
        resumed = json.load(f)["rungs"]
    assert {k: v["pruned_runs"] for k, v in resumed.items()} == {
        k: v["pruned_runs"] for k, v in record.items()}
    a, b = metric_rows(full), metric_rows(killed)
    assert_same_rows(a, b)
    # One launch trains the whole grid: --cohorts is refused.
    part = jaxseg(args + [f"--workdir={tmp_path / 'part'}", "--cohorts=c000"])
    assert part.returncode == 2
    assert "train.halving.group=grid ranks every cohort" in part.stderr
