"""Behaviour check (run.sh): every replica rule on the phantom.

Early stop, plateau, divergence, data fraction, eval.select, early stopping on Dice, HD95.
"""
from jaxseg import configs


def get_config(arg=None):
    c = configs.study("smoke")
    c.train.epochs = 6
    c.train.early_stopping = 2
    c.train.early_stopping_start = 1
    c.train.checkpoint_every = 2
    c.eval.hd95 = True
    return c


def sweep(add, arg=None):
    for lr in (1e-3, 3e-2):
        add(**{"optim.learning_rate": lr, "optim.schedule": "plateau"})
        add(**{"optim.learning_rate": lr, "data.fraction": 0.5, "seed": 1})
    add(**{"optim.learning_rate": 1e6})  # diverges
    add(**{"optim.name": "sgd", "optim.learning_rate": 1e-2,
           "train.early_stopping_monitor": "dice"})
    add(**{"optim.name": "sgd", "optim.learning_rate": 1e-2, "eval.select": "loss"})
