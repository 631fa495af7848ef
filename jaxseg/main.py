"""The ``jaxseg`` command line (absl flags): ``jaxseg train --config=PATH[:ARG] --workdir=DIR``.

Commands:
  train   train one cohort: the config's runs (its ``sweep``, if it has one, must
          differ only in numeric replica fields) as replicas of one program.
  sweep   a whole grid in one process: its runs planned into as few cohorts as possible,
          each compiled once, resumable; results.csv/json/md in the workdir
          (``--dry_run`` prints the plan; ``--calibrate`` times its steps here;
          ``--cohorts`` trains a part of the grid).
  bench   time one training step of R replicas under each replica strategy against
          R single-replica steps (``--replicas``, ``--strategies``, ``--bench_out``).
  inspect list a workdir's cohorts and replicas (status, best epoch, metrics, checkpoints);
          ``--replica=ID`` shows one in depth, ``--export=PATH`` writes it as a standalone
          model.
  predict segment PNG/DICOM slices, HDF5 or NIfTI slices/volumes (a file, folder or
          pattern) with a replica (``--workdir`` + ``--replica``) or an exported
          ``--model``; ``--masks`` adds metrics.
  report  a self-contained report folder (report.md, report.html, PNG figures) of a workdir.
  refit   train a chosen replica (``--workdir`` + ``--replica``) again on train + validation
          for its best epoch count, into the train workdir ``--output``.
  convert turn torchvision ResNet-18 weights (``--input`` .pth or .safetensors) into the
          ``.npz`` that ``--config.model.pretrained`` loads into DeepLabV3 (``--output``).

Every config field can be overridden with ``--config.a.b=value``; ``--helpfull``
lists every flag. Errors in data or config print one line and exit with status 2.
"""

import ast
import logging as pylogging
import os
import sys
import threading

from absl import app, flags, logging
from ml_collections import config_flags

from jaxseg import configs
from jaxseg.errors import JaxsegError

COMMANDS = ("train", "sweep", "bench", "inspect", "predict", "report", "refit", "convert")
NEEDS_CONFIG = ("train", "sweep", "bench")

config_flags.DEFINE_config_file(
    "config", None, "Experiment file (e.g. experiments/quickstart.py[:ARG]) whose "
    "get_config(ARG) returns the config; fields are overridden with --config.a.b=value. "
    "The fields, their defaults and meaning (jaxseg/configs.py):\n" + configs.field_help(),
    lock_config=False)
flags.DEFINE_string("workdir", None, "Folder for checkpoints, history.jsonl, summary.json and "
                    "TensorBoard files. Re-running the same command resumes from it.")
flags.DEFINE_bool("dry_run", False, "sweep: print the plan (runs, cohorts, replicas per "
                  "cohort, memory and time estimates) and exit.")
flags.DEFINE_bool("calibrate", False, "sweep: time one training step of each architecture in "
                  "the plan on this machine (compiling it) and estimate the run time from "
                  "that instead of the built-in throughput, which is off when the machine "
                  "is faster or slower than the day it was measured.")
flags.DEFINE_list("cohorts", None, "sweep: train only these cohorts (c000,c003; names as "
                  "--dry_run prints them), to share one grid between machines or sessions "
                  "over one workdir; the launch that finds every cohort finished writes the "
                  "tables.")
flags.DEFINE_list("replicas", ["1", "2", "4"], "bench: cohort sizes R to measure.")
flags.DEFINE_list("strategies", ["sequential", "unroll", "vmap", "map"],
                  "bench: replica strategies to measure.")
flags.DEFINE_integer("repeats", 3, "bench: timed steps per measurement (the median is reported).")
flags.DEFINE_string("bench_out", None, "bench: also write the rows as JSON to this file.")
flags.DEFINE_string("replica", None, "inspect/predict/report: a replica id as `jaxseg inspect` "
                    "lists them (sweep: run number or COHORT/INDEX; train: replica index).")
flags.DEFINE_string("export", None, "inspect: write --replica as a standalone model folder "
                    "(orbax checkpoint + config.json + export.json).")
flags.DEFINE_enum("weights", "best", ["best", "last"], "inspect/predict: the replica's weights "
                  "at its best epoch or at its newest checkpoint.")
flags.DEFINE_string("model", None, "predict: an exported model folder (instead of --workdir and "
                    "--replica).")
flags.DEFINE_string("input", None, "predict: a PNG or DICOM slice, an HDF5 slice or volume, a "
                    "NIfTI volume, a folder of any of them, or a quoted glob pattern of them "
                    "('data/patient*_frame??.h5'); convert: the torchvision weights file.")
flags.DEFINE_string("masks", None, "predict: the true mask PNG, or a folder of masks "
                    "(<name>_mask.png or <name>.png; NIfTI: label volumes, nnU-Net's labelsTr), "
                    "for metrics.")
flags.DEFINE_string("output", None, "predict: output folder (masks, overlays, metrics); "
                    "report: the report folder (default WORKDIR/report); refit: the new "
                    "train workdir; convert: the .npz to write.")
flags.DEFINE_integer("panels", 4, "report: validation images shown per configuration panel.")
flags.DEFINE_bool("distributed", False, "Multi-host: start JAX's distributed runtime "
                  "(one process per host) from --coordinator_address/--num_processes/"
                  "--process_id, or from the environment (SLURM, JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_string("coordinator_address", None, "Multi-host: host:port of process 0 "
                    "(implies --distributed).")
flags.DEFINE_integer("num_processes", None, "Multi-host: the number of processes.")
flags.DEFINE_integer("process_id", None, "Multi-host: this process's index (0 writes the "
                     "workdir's files).")
flags.DEFINE_bool("traceback", False, "Show the full traceback of an unexpected error "
                  "instead of one line.")
flags.DEFINE_string("compilation_cache", os.path.expanduser("~/.cache/jaxseg/xla"),
                    "Persistent XLA compilation cache folder ('' to disable): a re-run "
                    "skips compiling programs it has compiled before.")


def _experiment():
    from jaxseg.sweep import expand

    module, arg = expand.load_experiment(flags.FLAGS["config"].config_filename)
    return expand.expand(module, arg)


def _train(argv_rest):
    from jaxseg import train
    from jaxseg.sweep import plan

    if not flags.FLAGS.workdir:
        raise JaxsegError("--workdir is required")
    config, runs = flags.FLAGS.config, _experiment()
    cohorts = plan.plan(config, runs, max_replicas=0)
    if len(cohorts) > 1:
        why = ("do not fit in device memory as one cohort"
               if all(c.config == cohorts[0].config for c in cohorts)
               else "differ in more than numeric fields")
        raise JaxsegError(f"the config's {len(runs)} runs need {len(cohorts)} compiled programs "
                          f"(they {why}); run them with `jaxseg sweep`")
    summary = train.train_and_evaluate(cohorts[0].config, flags.FLAGS.workdir,
                                       cohorts[0].overrides)
    for rep in summary["replicas"]:
        best = rep["best"] or {}
        logging.info("replica %d: %s, best epoch %s, val dice %s, overrides %s", rep["replica"],
                     rep["status"], rep["best_epoch"], best.get("dice"), rep["overrides"])
    print(f"jaxseg: trained {len(summary['replicas'])} replica(s); results in "
          f"{flags.FLAGS.workdir}/summary.json")


def _sweep(argv_rest):
    from jaxseg.sweep import run

    if not flags.FLAGS.workdir and not flags.FLAGS.dry_run:
        raise JaxsegError("--workdir is required")
    run.run_sweep(flags.FLAGS.config, _experiment(), flags.FLAGS.workdir,
                  dry_run=flags.FLAGS.dry_run, calibrate=flags.FLAGS.calibrate,
                  only=flags.FLAGS.cohorts,
                  title=os.path.basename(flags.FLAGS["config"].config_filename))


def _bench(argv_rest):
    import json
    import platform

    import jax

    from jaxseg import bench

    rows = bench.strategy_table(flags.FLAGS.config, [int(r) for r in flags.FLAGS.replicas],
                                flags.FLAGS.strategies, flags.FLAGS.repeats)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{os.cpu_count()} cores, jax {jax.__version__}, {platform.python_version()}")
    print(bench.format_table(rows))
    if flags.FLAGS.bench_out:
        with open(flags.FLAGS.bench_out, "w") as f:
            json.dump({"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
                       "jax": jax.__version__, "rows": rows}, f, indent=1)


def _inspect(argv_rest):
    from jaxseg import inspection, model_io
    from jaxseg import workdir as workdir_lib

    if not flags.FLAGS.workdir:
        raise JaxsegError("--workdir is required")
    wd = workdir_lib.Workdir(flags.FLAGS.workdir)
    if flags.FLAGS.replica is None:
        if flags.FLAGS.export:
            raise JaxsegError("--export needs --replica=ID (the replica to export)")
        print(inspection.describe_workdir(wd))
        return
    rep = wd.replica(flags.FLAGS.replica)
    if flags.FLAGS.export:
        model = model_io.from_replica(rep, flags.FLAGS.weights)
        path = model_io.export(model, flags.FLAGS.export)
        print(f"jaxseg: exported replica {rep.id} ({flags.FLAGS.weights} weights, epoch "
              f"{model.meta['epoch']}) to {path}")
        return
    print(inspection.describe_replica(wd, rep, flags.FLAGS.weights))


def _predict(argv_rest):
    from jaxseg import model_io, predict

    if not flags.FLAGS.input or not flags.FLAGS.output:
        raise JaxsegError("predict needs --input=PNG|DCM|H5|NII|FOLDER|PATTERN and --output=DIR")
    model = model_io.load(flags.FLAGS.model, flags.FLAGS.workdir, flags.FLAGS.replica,
                         flags.FLAGS.weights)
    result = predict.run_predict(model, flags.FLAGS.input, flags.FLAGS.output,
                                 flags.FLAGS.masks)
    print("jaxseg: " + predict.format_metrics(result, model.config.data.class_names))
    print(f"jaxseg: masks and overlays in {flags.FLAGS.output}")


def _report(argv_rest):
    from jaxseg import report

    if not flags.FLAGS.workdir:
        raise JaxsegError("--workdir is required")
    out = report.build(flags.FLAGS.workdir, flags.FLAGS.output, panels=flags.FLAGS.panels)
    print(f"jaxseg: report in {out}/report.html (and report.md)")


def _refit(argv_rest):
    from jaxseg import refit

    if not flags.FLAGS.workdir or flags.FLAGS.replica is None or not flags.FLAGS.output:
        raise JaxsegError("refit needs --workdir=DIR --replica=ID (the chosen run) and "
                          "--output=DIR (the new workdir)")
    summary = refit.refit(flags.FLAGS.workdir, flags.FLAGS.replica, flags.FLAGS.output)
    print(f"jaxseg: replica {flags.FLAGS.replica} refit on train + validation for "
          f"{summary['epochs']} epochs in {flags.FLAGS.output} (predict with "
          f"--workdir={flags.FLAGS.output} --replica=0)")


def _convert(argv_rest):
    from jaxseg.models import pretrained

    if not flags.FLAGS.input or not flags.FLAGS.output:
        raise JaxsegError("convert needs --input=resnet18.pth (or .safetensors) and "
                          "--output=resnet18.npz")
    n = pretrained.convert_file(flags.FLAGS.input, flags.FLAGS.output)
    print(f"jaxseg: {n} backbone arrays written to {flags.FLAGS.output} (train with "
          f"--config.model.name=deeplabv3 --config.model.pretrained={flags.FLAGS.output})")


def main(argv):
    """Dispatches ``argv[1]`` to its command."""
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"usage: jaxseg {{{'|'.join(COMMANDS)}}} [--config=PATH] "
                             "--workdir=DIR [...]  (see --helpfull and README.md)")
    if flags.FLAGS.distributed or flags.FLAGS.coordinator_address:
        from jaxseg.engine import devices

        devices.initialize_distributed(flags.FLAGS.coordinator_address,
                                       flags.FLAGS.num_processes, flags.FLAGS.process_id)
    if flags.FLAGS.compilation_cache:
        import jax

        jax.config.update("jax_compilation_cache_dir", flags.FLAGS.compilation_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    if flags.FLAGS.config is None and argv[1] in NEEDS_CONFIG:
        raise app.UsageError("--config is required, e.g. --config=experiments/quickstart.py")
    try:
        {"train": _train, "sweep": _sweep, "bench": _bench, "inspect": _inspect,
         "predict": _predict, "report": _report, "refit": _refit,
         "convert": _convert}[argv[1]](argv[2:])
    except JaxsegError as e:
        _fail(str(e))
    except OSError as e:  # a read-only folder, a full disk, a missing permission
        if flags.FLAGS.traceback:
            raise
        where = f": {e.filename}" if e.filename else ""
        _fail(f"{e.strerror or e}{where} (nothing computed before it is lost: fix it and "
              "run the same command again)")
    except Exception as e:  # noqa: BLE001 - one line, unless asked for the traceback
        if flags.FLAGS.traceback:
            raise
        _fail(f"unexpected {type(e).__name__}: {' '.join(str(e).split())[:500]} (run again "
              "with --traceback for the details; if it looks like a bug in jaxseg, report it)",
              status=1)


def _fail(message: str, status: int = 2):
    print(f"jaxseg: error: {message}", file=sys.stderr)
    # A run cut short by an error (a full disk mid-checkpoint) leaves library threads (orbax's
    # event loop, tensorstore) that print tracebacks while the interpreter shuts down, after
    # this line. Nothing is left to write (jaxseg's files are written synchronously and
    # atomically; the lock was released on the way out), so exit without that shutdown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _check_experiment(argv: list[str]) -> None:
    """Loads the ``--config`` experiment file before absl does, to report its faults in one line.

    ml_collections loads the file while parsing flags and reports a syntax error, or a
    ``:ARG`` its ``get_config`` does not take, as a traceback inside a flags error.
    """
    value = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    if value is None and "--config" in argv[:-1]:
        value = argv[argv.index("--config") + 1]
    if value is None:
        return
    from jaxseg.sweep import expand

    path, sep, arg = value.partition(":")
    try:
        module, arg = expand.load_experiment(value)
    except JaxsegError as e:
        _fail(str(e))
    except SyntaxError as e:
        _fail(f"experiment file {e.filename}, line {e.lineno}: {e.msg}")
    except Exception as e:  # noqa: BLE001 - any import-time fault of the user's file
        _fail(f"experiment file {path} failed to load: {type(e).__name__}: {e}")
    if not sep:
        return  # nothing to check before absl loads it (get_config runs once, there)
    if not expand.arguments(module.get_config):
        _fail(f"{path}: get_config() takes no argument; drop ':{arg}' from --config")
    try:  # an argument the file refuses, in one line
        module.get_config(arg)
    except JaxsegError as e:
        _fail(f"{path}: {e}")
    except Exception as e:  # noqa: BLE001 - the user's file, whatever it raises
        _fail(f"{path}: get_config({arg!r}) failed: {type(e).__name__}: {e}")


def _config_key_hint(msg: str, argv: list[str]) -> str:
    """Why an override names no field, when the cause is known (loss terms are a dict)."""
    for a in argv:
        if a.startswith("--config.loss.weights.") or a.startswith("--config.loss.params."):
            key = a[len("--config."):].split("=", 1)[0]
            if key.rsplit(".", 1)[-1] in msg:
                section = key.rsplit(".", 1)[0]
                return (f" ({section} holds only the terms the experiment sets; to add one, "
                        f"give the whole dict: '--config.{section}={{\"ce\": 1.0, "
                        f"\"{key.rsplit('.', 1)[-1]}\": 1.0}}')")
    return ""


class _OwnInfoOnly:
    """Shows jaxseg's INFO lines and everyone's warnings; hides library INFO chatter (orbax).

    A library's error record keeps its first line only, without its traceback (orbax's
    threads log one per failed write when the disk fills), unless ``--traceback``.
    """

    def filter(self, record):
        package = os.path.dirname(os.path.abspath(__file__))
        if record.getMessage().startswith("Using custom data configuration"):
            return False  # TFDS says this for every jaxseg dataset (their options are configs)
        ours = record.pathname.startswith(package)
        if not ours and record.levelno >= pylogging.ERROR and not _traceback_wanted():
            first = (record.getMessage().strip().splitlines() or [""])[0]
            record.msg, record.args = first[:300], None
            record.exc_info = record.exc_text = record.stack_info = None
        return record.levelno >= pylogging.WARNING or ours


def _traceback_wanted() -> bool:
    return flags.FLAGS.is_parsed() and flags.FLAGS.traceback


def _one_line_hook(default):
    """A ``sys.unraisablehook`` / ``threading.excepthook`` printing one line per exception.

    Libraries' background threads raise these when a write fails; ``--traceback`` keeps the
    default hook's full output.
    """
    def hook(info):
        if _traceback_wanted():
            return default(info)
        exc = getattr(info, "exc_value", None)
        text = " ".join(str(exc).split())[:200]
        print(f"jaxseg: warning: a library thread ended with {type(exc).__name__}: {text}",
              file=sys.stderr)
    return hook


def run():
    """Console-script entry point."""
    logging.set_verbosity(logging.INFO)
    # On the handler, so library loggers that propagate to the root (jax, orbax) are filtered too.
    logging.get_absl_handler().addFilter(_OwnInfoOnly())
    sys.unraisablehook = _one_line_hook(sys.__unraisablehook__)
    threading.excepthook = _one_line_hook(threading.__excepthook__)
    started = []  # set once absl has parsed the flags and calls main

    def start(argv):
        started.append(True)
        main(argv)

    _check_experiment(sys.argv[1:])
    try:
        app.run(start)
    except (AttributeError, KeyError) as e:
        if started:
            raise
        # ml_collections raises AttributeError (a field) or KeyError (a section) while
        # parsing an override the config does not have (absl has not reached main yet).
        msg = str(e)
        try:  # the message arrives as the repr of a repr
            while msg[:1] in "'\"" and msg[:1]:
                msg = ast.literal_eval(msg)
        except (ValueError, SyntaxError):
            pass
        msg = " ".join(msg.split())
        what = "field" if isinstance(e, AttributeError) else "section"
        _fail(f"bad --config override: no config {what} {msg}"
              + _config_key_hint(msg, sys.argv[1:]))


if __name__ == "__main__":
    run()
