"""The ``jaxseg`` command line (absl flags): ``jaxseg train --config=PATH[:ARG] --workdir=DIR``.

Commands:
  train   train one cohort: the config's runs (its ``sweep``, if it has one, must
          differ only in numeric replica fields) as replicas of one program.

Every config field can be overridden with ``--config.a.b=value``; ``--helpfull``
lists every flag. Errors in data or config print one line and exit with status 2.
"""

import importlib.util
import logging as pylogging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxseg.errors import JaxsegError

COMMANDS = ("train",)

config_flags.DEFINE_config_file(
    "config", None, "Experiment file (e.g. experiments/quickstart.py[:ARG]) whose "
    "get_config(ARG) returns the config; fields are overridden with --config.a.b=value.",
    lock_config=False)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, history.jsonl, summary.json and "
                    "TensorBoard files. Re-running the same command resumes from it.")
flags.DEFINE_string("compilation_cache", os.path.expanduser("~/.cache/jaxseg/xla"),
                    "Persistent XLA compilation cache folder ('' to disable): a re-run "
                    "skips compiling programs it has compiled before.")


def load_sweep(config_arg: str) -> list[dict]:
    """The runs an experiment file's ``sweep(add[, arg])`` adds, or ``[{}]`` without one.

    Args:
      config_arg: the ``--config`` value, ``PATH[:ARG]``.

    Returns:
      One dict of dotted overrides per run.
    """
    path, _, arg = config_arg.partition(":")
    spec = importlib.util.spec_from_file_location("jaxseg_experiment", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "sweep"):
        return [{}]
    runs = []

    def add(**overrides):
        runs.append(overrides)

    try:
        module.sweep(add, arg) if arg else module.sweep(add)
    except TypeError:
        module.sweep(add)
    return runs or [{}]


def _train(argv_rest):
    from jaxseg import train

    if not flags.FLAGS.workdir:
        raise JaxsegError("--workdir is required")
    config = flags.FLAGS.config
    config_arg = flags.FLAGS["config"].config_filename
    runs = load_sweep(config_arg)
    summary = train.train_and_evaluate(config, flags.FLAGS.workdir, runs)
    for rep in summary["replicas"]:
        best = rep["best"] or {}
        logging.info("replica %d: %s, best epoch %s, val dice %s, overrides %s", rep["replica"],
                     rep["status"], rep["best_epoch"], best.get("dice"), rep["overrides"])
    print(f"jaxseg: trained {len(summary['replicas'])} replica(s); results in "
          f"{flags.FLAGS.workdir}/summary.json")


def main(argv):
    """Dispatches ``argv[1]`` to its command."""
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"usage: jaxseg {{{'|'.join(COMMANDS)}}} --config=PATH "
                             "--workdir=DIR [--config.a.b=value ...]  (--helpfull for flags)")
    if flags.FLAGS.compilation_cache:
        import jax

        jax.config.update("jax_compilation_cache_dir", flags.FLAGS.compilation_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    if flags.FLAGS.config is None:
        raise app.UsageError("--config is required, e.g. --config=experiments/quickstart.py")
    try:
        {"train": _train}[argv[1]](argv[2:])
    except JaxsegError as e:
        print(f"jaxseg: error: {e}", file=sys.stderr)
        sys.exit(2)


class _OwnInfoOnly:
    """Shows jaxseg's INFO lines and everyone's warnings; hides library INFO chatter (orbax)."""

    def filter(self, record):
        package = os.path.dirname(os.path.abspath(__file__))
        return record.levelno >= pylogging.WARNING or record.pathname.startswith(package)


def run():
    """Console-script entry point."""
    logging.set_verbosity(logging.INFO)
    logging.get_absl_logger().addFilter(_OwnInfoOnly())
    app.run(main)


if __name__ == "__main__":
    run()
