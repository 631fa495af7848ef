"""Behaviour check (run.sh): k-fold cohort."""
from jaxseg import configs


def get_config(arg=None):
    c = configs.study("smoke")
    c.data.folds = 3
    c.train.epochs = 3
    return c


def sweep(add, arg=None):
    for f in range(3):
        add(**{"data.fold": f, "seed": f})
