"""The peer of ``jaxseg sweep`` with successive halving: the PyTorch reference under Optuna.

How a careful PyTorch user runs a pruned grid search today: one process, Optuna's
``GridSampler`` over the same grid, its ``SuccessiveHalvingPruner`` with the same rungs
(``min_resource`` epochs, ``reduction_factor``), each trial the PyTorch reference
(``benchmarks/torch_reference.py``: the same U-Net, loss, augmentation, batch and data as
the study base) trained for the study's epochs with its early stopping (patience 10 on the
validation loss) and reporting its best validation Dice so far after every epoch, as
jaxseg's rung ranks by. Optuna's pruner is asynchronous: a trial is compared at a rung with
the trials that reached it before, so it prunes fewer than the synchronous halving jaxseg
does inside a cohort, where every configuration reaches the rung together.

Prints (and writes to ``--out``) the total wall time, the time until the best trial
finished, the best configuration, and the epochs trained.

Commands (docs/studies/lr_search1/halving/, docs/studies/optimizer_lr/halving/):
  python benchmarks/optuna_peer.py --grid=lr_search1 --min_resource=2 --reduction_factor=2 \\
      --out=runs/optuna_peer.json
  python benchmarks/optuna_peer.py --grid=optimizer_lr --min_resource=4 --reduction_factor=3 \\
      --out=runs/optuna_peer_opt.json
"""

import math
import os
import time

import optuna
import record
import torch
import torch_reference as ref
from absl import app, flags

GRIDS = {  # the experiments' grids (experiments/lr_search.py stage 1, optimizer_lr.py)
    "lr_search1": {"optimizer": ["adam", "sgd", "rmsprop", "adagrad"],
                   "lr": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]},
    "optimizer_lr": {"optimizer": ["adam", "adamw", "sgd", "rmsprop", "adagrad", "adamax",
                                   "adadelta"], "lr": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]},
}
flags.DEFINE_enum("grid", "lr_search1", list(GRIDS), "The grid.")
flags.DEFINE_integer("min_resource", 2, "The pruner's first rung (epochs).")
flags.DEFINE_integer("reduction_factor", 2, "The pruner's reduction factor (jaxseg's eta).")
flags.DEFINE_integer("patience", 10, "Early stopping: epochs without a lower validation loss.")
flags.DEFINE_integer("trials", 0, "Stop after this many trials (0: the whole grid).")
flags.DEFINE_string("out", "", "Write the result JSON here too.")
FLAGS = flags.FLAGS
FLAGS.set_default("epochs", 50)  # the study base's (jaxseg.configs.study)


def main(argv):
    del argv
    torch.set_num_threads(FLAGS.threads or os.cpu_count())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    images, labels = ref.load_split("train")
    val_images, val_labels = ref.load_split("val")
    grid = GRIDS[FLAGS.grid]
    finished = []  # (seconds since start, trial number, best dice, epochs, state)
    t0 = time.time()

    def objective(trial):
        name = trial.suggest_categorical("optimizer", grid["optimizer"])
        lr = trial.suggest_categorical("lr", grid["lr"])
        torch.manual_seed(FLAGS.seed)
        gen = torch.Generator().manual_seed(FLAGS.seed)
        model = ref.UNet()
        # AdamW: Adam with decoupled decay 1e-4, as the experiment's AdamW runs.
        opt = (torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
               if name == "adamw" else ref.make_optimizer(model, lr, 0.0, name))
        best, low, bad, epoch = -math.inf, math.inf, 0, 0
        try:
            for epoch in range(1, FLAGS.epochs + 1):
                ref.train_epoch(model, opt, images, labels, gen, FLAGS.batch_size)
                d = ref.dice(model, val_images, val_labels)
                best = max(best, d if math.isfinite(d) else -math.inf)
                trial.report(best, epoch)
                v = ref.val_loss(model, val_images, val_labels)
                if v < low:
                    low, bad = v, 0
                else:
                    bad += 1
                    if bad >= FLAGS.patience:
                        break
                if trial.should_prune():
                    raise optuna.TrialPruned()
        except optuna.TrialPruned:
            finished.append((time.time() - t0, trial.number, best, epoch, "pruned"))
            raise
        finished.append((time.time() - t0, trial.number, best, epoch, "complete"))
        return best

    sampler = optuna.samplers.GridSampler(grid, seed=FLAGS.seed)
    pruner = optuna.pruners.SuccessiveHalvingPruner(
        min_resource=FLAGS.min_resource, reduction_factor=FLAGS.reduction_factor,
        min_early_stopping_rate=0)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    n = math.prod(len(v) for v in grid.values())
    study.optimize(objective, n_trials=FLAGS.trials or n)
    total = time.time() - t0
    best = study.best_trial
    at = next(s for s, num, *_ in finished if num == best.number)
    out = {"grid": FLAGS.grid, "min_resource": FLAGS.min_resource,
           "reduction_factor": FLAGS.reduction_factor, "epochs": FLAGS.epochs,
           "torch": torch.__version__, "optuna": optuna.__version__,
           "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
           "wall_s": total, "time_to_best_s": at, "best": {**best.params, "dice": best.value},
           "trials": len(finished), "pruned": sum(f[4] == "pruned" for f in finished),
           "epochs_trained": sum(f[3] for f in finished),
           "trials_in_order": [{"t_s": round(s, 1), "trial": num, "best_dice": d,
                                "epochs": e, "state": st} for s, num, d, e, st in finished]}
    record.emit(out, FLAGS.out)


if __name__ == "__main__":
    app.run(main)
