"""A final model on train + validation: ``jaxseg refit --workdir=DIR --replica=ID --output=DIR``.

Once a grid has chosen a configuration, the model people keep is trained again on every
labelled image (the source studies retrained their chosen UNet 3+ on train + validation).
``refit`` takes one replica of a workdir (a sweep's run or a train replica) and trains its
config once more, its own hyperparameters and seed included, with ``data.train_on_val``
(the validation images join the training images; a k-fold replica's pool is all of them)
for its best epoch count. The schedule spans the run's full length as it did
(``train.schedule_epochs``), so the learning rate follows the original run up to that
epoch; no early stopping, no halving; evaluated once, at the end, on the validation images,
which it trained on: those numbers are not a held-out estimate. The output is a normal train
workdir that ``inspect``, ``predict``, export and ``report`` read.

A reduce-on-plateau schedule reacts to the validation loss, which a refit has no held-out
value of: it is refused (choose a fixed schedule's run, or train with ``data.train_on_val``
yourself).
"""

import ml_collections
from absl import logging

from jaxseg import train
from jaxseg import workdir as workdir_lib
from jaxseg.errors import JaxsegError


def refit_config(rep: workdir_lib.Replica) -> ml_collections.ConfigDict:
    """The config that retrains replica ``rep`` on train + validation.

    Args:
      rep: a replica of a workdir (:meth:`jaxseg.workdir.Workdir.replica`).

    Returns:
      Its resolved config with ``data.train_on_val``, ``train.epochs`` = its best epoch and
      the schedule's span kept.
    """
    if not rep.best_epoch:
        raise JaxsegError(f"replica {rep.id} has no best epoch yet (not evaluated): train it "
                          "first")
    c = workdir_lib.replica_config(rep)
    if c.optim.schedule == "plateau":
        raise JaxsegError(f"replica {rep.id} uses optim.schedule=plateau, which follows the "
                          "validation loss; a refit on train + validation has none held out")
    c.train.schedule_epochs = int(c.train.schedule_epochs) or int(c.train.epochs)
    c.train.epochs = int(rep.best_epoch)
    c.data.train_on_val, c.data.folds, c.data.fold = True, 0, 0
    c.train.early_stopping = 0
    c.train.halving.min_epochs = 0
    c.eval.every = int(rep.best_epoch)  # once, at the end
    c.train.checkpoint_every = min(int(c.train.checkpoint_every), int(rep.best_epoch))
    return c


def refit(workdir: str, replica: str, out: str) -> dict:
    """Retrains a replica on train + validation into a new train workdir.

    Args:
      workdir: the sweep or train workdir holding the replica.
      replica: its id, as ``jaxseg inspect`` lists it.
      out: the new workdir (resumable like any train workdir).

    Returns:
      The new workdir's summary.
    """
    rep = workdir_lib.Workdir(workdir).replica(replica)
    config = refit_config(rep)
    logging.info("refit: replica %s of %s on train + validation for %d epochs (its best), "
                 "the schedule over %d", rep.id, workdir, config.train.epochs,
                 config.train.schedule_epochs)
    return train.train_and_evaluate(config, out)
