"""The replica tracker's rules on hand-made metric sequences, each expected value worked out by
hand: early stopping (patience, start epoch, monitor), the best epoch (eval.select), divergence,
the plateau feed, the end of training, the checkpoint record and its migration; the progress
line's ETA."""

import math

import numpy as np
import pytest

from jaxseg import outputs
from jaxseg.engine.tracker import Policy, Tracker


def row(loss, dice=0.5, dice_image=None):
    return {"loss": loss, "dice": dice, "dice_image": dice if dice_image is None else dice_image}


def run(policy, rows_per_epoch):
    """Feeds one evaluation per epoch; returns the tracker and each epoch's improved flags."""
    t = Tracker.start(policy, len(rows_per_epoch[0]))
    flags = []
    for epoch, rows in enumerate(rows_per_epoch, 1):
        shown = [r if a else None for r, a in zip(rows, t.alive, strict=True)]
        flags.append(t.evaluated(shown, epoch).tolist())
        t.epoch_done(epoch, 1.0)
    return t, flags


def test_early_stopping_counts_evaluations_without_a_lower_loss():
    # Losses 1.0, 0.8, 0.9, 0.85, 0.7, 0.9, 0.95: new lows at 1, 2, 5; patience 2 counts the
    # evaluations after a low: epochs 3, 4 -> stopped at 4 (the low of epoch 5 never comes).
    losses = [1.0, 0.8, 0.9, 0.85, 0.7, 0.9, 0.95]
    t, _ = run(Policy(epochs=7, patience=2), [[row(v)] for v in losses])
    assert t.replicas[0].status == "stopped" and t.replicas[0].stopped_epoch == 4
    assert t.replicas[0].best_monitored == 0.8
    # Patience 3: bad at 3, 4 then the low of 5 resets; bad at 6, 7: runs to the end.
    t, _ = run(Policy(epochs=7, patience=3), [[row(v)] for v in losses])
    assert t.replicas[0].status == "finished" and t.replicas[0].stopped_epoch is None
    assert t.replicas[0].bad_evals == 2
    # Patience 0: never stops.
    t, _ = run(Policy(epochs=7, patience=0), [[row(v)] for v in losses])
    assert t.replicas[0].status == "finished"


def test_early_stopping_start_and_dice_monitor():
    # A constant loss: no new low after epoch 1. Without a start, patience 2 stops at epoch 3;
    # counting only after epoch 3, the bad evaluations are 4 and 5: stopped at 5.
    flat = [[row(1.0)] for _ in range(7)]
    t, _ = run(Policy(epochs=7, patience=2), flat)
    assert t.replicas[0].stopped_epoch == 3
    t, _ = run(Policy(epochs=7, patience=2, start=3), flat)
    assert t.replicas[0].stopped_epoch == 5
    # Watching Dice (higher is better) on rows whose loss falls every epoch: Dice 0.5, 0.6,
    # 0.55, 0.58 -> no new high at 3 and 4: stopped at 4, though the loss kept falling.
    rows = [[row(1.0 - 0.1 * e, d)] for e, d in enumerate([0.5, 0.6, 0.55, 0.58, 0.7])]
    t, _ = run(Policy(epochs=5, monitor="dice", patience=2), rows)
    assert t.replicas[0].stopped_epoch == 4 and t.replicas[0].best_monitored == -0.6
    t, _ = run(Policy(epochs=5, monitor="loss", patience=2), rows)
    assert t.replicas[0].status == "finished"


def test_best_epoch_follows_the_selected_metric():
    # Dice 0.5, 0.7, 0.6 with per-image Dice 0.6, 0.5, 0.65 and loss 0.9, 1.0, 0.8.
    rows = [[row(0.9, 0.5, 0.6)], [row(1.0, 0.7, 0.5)], [row(0.8, 0.6, 0.65)]]
    for select, epoch, flags in (("dice", 2, [[True], [True], [False]]),
                                 ("dice_image", 3, [[True], [False], [True]]),
                                 ("loss", 3, [[True], [False], [True]])):
        t, improved = run(Policy(epochs=3, select=select), rows)
        assert t.replicas[0].best_epoch == epoch, select
        assert t.replicas[0].best_metrics == rows[epoch - 1][0]
        assert t.replicas[0].last_metrics == rows[2][0]
        assert improved == flags, select
    # Per-volume Dice 0.8, 0.75, 0.85 (ACDC's protocol) picks epoch 3 where pooled Dice
    # picks 2; watched by early stopping with patience 1, the dip at epoch 2 stops it there.
    for r, v in zip(rows, (0.8, 0.75, 0.85), strict=True):
        r[0]["volume_dice"] = v
    t, improved = run(Policy(epochs=3, select="volume_dice"), rows)
    assert t.replicas[0].best_epoch == 3 and improved == [[True], [False], [True]]
    t, _ = run(Policy(epochs=3, select="volume_dice", monitor="volume_dice", patience=1), rows)
    assert t.replicas[0].stopped_epoch == 2 and t.replicas[0].best_epoch == 1


def test_a_diverged_replica_is_frozen_and_its_weights_are_not_kept():
    policy = Policy(epochs=3, patience=1)
    t = Tracker.start(policy, 2)
    t.trained(t.alive, np.array([0.5, 0.6]), 1)
    t.diverged(np.array([False, True]), 1)
    # Evaluated after the epoch it diverged in (it was alive when the epoch began): its row
    # is recorded, its weights are not kept, and it does not become "stopped".
    improved = t.evaluated([row(1.0), row(float("nan"), 0.0)], 1)
    assert improved.tolist() == [True, False]
    assert t.status == ["running", "diverged"] and t.replicas[1].stopped_epoch == 1
    assert t.alive.tolist() == [True, False]
    t.epoch_done(1, 2.0)
    t.trained(t.alive, np.array([0.4, np.nan]), 2)
    assert t.replicas[0].train_loss == [0.5, 0.4] and t.replicas[1].train_loss == [0.6]
    assert t.evaluated([row(2.0), None], 2).tolist() == [False, False]
    assert t.status == ["stopped", "diverged"]  # patience 1: the worse loss of epoch 2
    assert t.complete and t.replicas[0].stopped_epoch == 2


def test_plateau_feed_end_of_training_and_leader():
    t = Tracker.start(Policy(epochs=2, patience=1), 3)
    t.evaluated([row(1.0, 0.3), row(1.0, 0.6), row(1.0, 0.5)], 1)
    t.epoch_done(1, 1.0)
    t.evaluated([row(0.5, 0.4), row(2.0, 0.1), row(0.5, 0.55)], 2)  # replica 1 stops
    assert t.plateau_feed(np.array([True, True, False])).tolist() == [True, False, False]
    assert t.leader() == (1, 0.6)
    assert not t.complete
    t.epoch_done(2, 1.0)
    assert t.status == ["finished", "stopped", "finished"] and t.complete
    assert t.epoch == 2 and t.wall_time_s == 2.0


def test_record_round_trips_and_old_records_migrate():
    t = Tracker.start(Policy(epochs=4), 2)
    t.trained(t.alive, np.array([0.5, 0.7]), 1)
    t.evaluated([row(1.0), None], 1)
    t.epoch_done(1, 3.0)
    record = t.to_json()
    assert record["best_monitored"] == [1.0, math.inf] and record["epoch"] == 1
    back = Tracker.from_json(record, t.policy)
    assert back == t
    # JSON has no infinities (the checkpoint writes None): they read back as start values.
    nulled = {**record, "best_score": [-1.0, None], "best_monitored": [1.0, None]}
    assert Tracker.from_json(nulled).replicas[1].best_score == -math.inf
    # A checkpoint of an older jaxseg names the monitored value best_val_loss.
    old = {k: v for k, v in nulled.items() if k != "best_monitored"}
    old["best_val_loss"] = [0.25, None]
    migrated = Tracker.from_json(old)
    assert [r.best_monitored for r in migrated.replicas] == [0.25, math.inf]
    summary = {"epochs": 1, "wall_time_s": 3.0, "replicas": t.replica_summaries(
        [{"seed": 0}], {"seed": np.array([0, 1])})}
    read = Tracker.from_summary(summary)
    assert read.status == t.status and read.replicas[0].best_metrics == row(1.0)
    assert summary["replicas"][1]["overrides"] == {}


def test_a_loss_above_its_bound_is_divergence():
    t = Tracker.start(Policy(epochs=3), 3)
    # Bounds 200, 200 and none (0): replica 1's finite 3e6 diverges; replica 2 has no bound.
    t.trained(t.alive, np.array([0.9, 3e6, 5e6]), 1, np.array([200.0, 200.0, 0.0]))
    assert t.status == ["running", "diverged", "running"] and t.replicas[1].stopped_epoch == 1
    assert t.replicas[1].train_loss == [3e6]  # recorded, then frozen
    t.trained(t.alive, np.array([250.0, 1.0, 1.0]), 2, np.array([200.0, 200.0, 0.0]))
    assert t.status == ["diverged", "diverged", "running"]
    assert t.replicas[1].train_loss == [3e6]  # no longer trained


def test_halving_rungs_and_schedule_by_hand():
    from jaxseg.engine import halving
    assert halving.rungs(50, 2, 3) == (2, 6, 18)
    assert halving.rungs(11, 1, 3) == (1, 3, 9)
    assert halving.rungs(9, 3, 3) == (3,)  # 9 is the last epoch, not a rung
    assert halving.rungs(50, 0, 3) == ()
    assert [halving.keep_count(n, 3) for n in (1, 2, 3, 5, 9, 10)] == [1, 1, 1, 1, 3, 3]
    # Two seeds per configuration, seeds and folds share a group, first-seen numbering.
    groups = halving.configuration_groups(
        [{"lr": 1, "seed": 0}, {"lr": 1, "seed": 1}, {"lr": 2, "seed": 0}, {"lr": 2, "seed": 1},
         {"lr": 3, "data.fold": 0}, {"lr": 3, "data.fold": 1}])
    assert groups == (0, 0, 1, 1, 2, 2)
    # 3 configurations x 2 replicas, 20 epochs, rungs 2 and 6 (eta 3): all 6 train 2 epochs,
    # then max(1, 3 // 3) = 1 configuration (2 replicas) trains the other 18: 12 + 36 = 48.
    assert halving.replica_epochs(groups, 20, halving.rungs(20, 2, 3), 3) == 48
    # Ties go to the lower group; NaN ranks last.
    assert halving.survivors({0: 0.5, 1: 0.5, 2: float("nan")}, 2) == {0}
    assert halving.survivors({0: 0.1, 1: 0.9, 2: 0.5, 3: 0.7}, 2) == {1, 3}


def test_halving_prunes_configurations_together_by_mean_best_score():
    # 3 configurations x 2 seeds (groups 0,0,1,1,2,2), rungs at epochs 1 and 2 (eta 2, 4
    # epochs). Dice per epoch (rows: replicas):
    #   g0: seed0 0.30 0.40 ...   seed1 0.50 0.20  -> mean best after 1: 0.40, after 2: 0.45
    #   g1: seed0 0.60 0.10       seed1 0.10 0.10  -> 0.35, 0.35
    #   g2: seed0 0.45 0.50       seed1 0.45 0.50  -> 0.45, 0.50
    # Rung 1: 3 compete, keep 3 // 2 = 1: g2 (0.45 > 0.40 > 0.35); g0, g1 pruned at epoch 1,
    # although g1's seed 0 has the single best value (0.60): groups are ranked by their mean.
    policy = Policy(epochs=4, rungs=(1, 2), eta=2, groups=(0, 0, 1, 1, 2, 2))
    dice = [[0.30, 0.50, 0.60, 0.10, 0.45, 0.45], [0.40, 0.20, 0.10, 0.10, 0.50, 0.50],
            [0.6] * 6, [0.7] * 6]
    t, flags = run(policy, [[row(1.0, d) for d in ep] for ep in dice])
    assert t.status == ["pruned"] * 4 + ["finished"] * 2
    assert [r.stopped_epoch for r in t.replicas] == [1, 1, 1, 1, None, None]
    # Pruned replicas keep the weights of their rung epoch if it was their best (all were).
    assert flags[0] == [True] * 6 and flags[1] == [False] * 4 + [True] * 2
    assert [r.best_score for r in t.replicas[:4]] == [0.30, 0.50, 0.60, 0.10]
    # Rung 2: only g2 competes, keep max(1, 1 // 2) = 1: nothing more pruned.
    assert [r.best_epoch for r in t.replicas[4:]] == [4, 4]
    # The record (and so a resume) carries the halving score.
    again = Tracker.from_json(t.to_json(), policy)
    assert [r.rank_best for r in again.replicas] == [r.rank_best for r in t.replicas]


def test_halving_ranks_by_its_own_metric_and_leaves_frozen_replicas_out():
    # Ranked by loss (lower better) while eval.select is dice; replica 2, stopped (early) at
    # epoch 1, is not a competitor at the rung of epoch 2.
    policy = Policy(epochs=3, select="dice", monitor="loss", rungs=(2,), eta=2, rank="loss",
                    groups=(0, 1, 2))
    t = Tracker.start(policy, 3)
    t.replicas[2].status, t.replicas[2].stopped_epoch = "stopped", 1
    t.evaluated([row(0.9, 0.9), row(0.5, 0.1), None], 1)
    t.epoch_done(1, 1.0)
    t.evaluated([row(0.8, 0.9), row(0.6, 0.1), None], 2)
    # Loss: replica 0 best 0.8, replica 1 best 0.5 -> 1 is kept despite its lower Dice.
    assert t.status == ["pruned", "running", "stopped"]
    assert t.replicas[0].best_epoch == 1 and t.replicas[0].stopped_epoch == 2


def test_rung_decision_over_a_grid_by_hand():
    from jaxseg.engine import halving
    # Five replicas of three configurations keyed as a grid keys them (JSON of the runs'
    # overrides): "a" x2 seeds (0.5 and 0.3, mean 0.4; the second stopped early, it still
    # counts in the mean), "b" (0.45), "c" (0.41, stopped: not a competitor, so it is
    # neither kept nor pruned). Competing a, b; eta 2 keeps 2 // 2 = 1: b (0.45 > 0.40).
    groups = ["a", "a", "b", "c", "a"]
    best = [0.5, 0.3, 0.45, 0.41, 0.4]
    running = [True, False, True, False, True]
    pruned, scores, kept = halving.rung_decision(groups, best, running, 2)
    assert scores == {"a": pytest.approx(0.4), "b": 0.45} and kept == {"b"}
    assert pruned == [0, 4]  # a's running replicas; the stopped one keeps its status
    # Nobody running: nothing competes.
    assert halving.rung_decision(groups, best, [False] * 5, 2) == ([], {}, set())


def test_grid_ranked_tracker_leaves_the_rung_to_the_sweep():
    # Under group=grid the tracker does not prune at a rung; prune() applies the sweep's.
    policy = Policy(epochs=3, rungs=(1,), eta=2, groups=(0, 1), group="grid")
    t = Tracker.start(policy, 2)
    t.evaluated([row(1.0, 0.2), row(1.0, 0.9)], 1)
    assert t.status == ["running", "running"]
    assert [r.rank_best for r in t.replicas] == [0.2, 0.9]
    t.prune([0], 1)
    assert t.status == ["pruned", "running"] and t.replicas[0].stopped_epoch == 1
    t.prune([0], 2)  # already frozen: unchanged
    assert t.replicas[0].stopped_epoch == 1


def test_progress_eta_leaves_the_compile_out():
    # Epoch 1 took 40 s, 30 of them compiling the training program: 8 more epochs at ~10 s.
    p = outputs.Progress(10, 2)
    assert p.epoch_done(1, 40.0, 2, 0.5, 0, 1.0, compile_s=30.0).endswith("ETA 1m30s")
    # Later epochs: the median of those after the first (which also compiles evaluation).
    p.epoch_done(2, 12.0, 2, 0.6, 1, 0.9)
    assert p.epoch_done(3, 14.0, 2, 0.6, 1, 0.8).endswith("ETA 1m31s")
