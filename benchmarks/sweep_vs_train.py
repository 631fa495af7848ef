"""One ``jaxseg sweep`` launch against one ``jaxseg train`` process per grid point.

The way people run grids today is one training script per grid point, each a fresh process
that loads the data and compiles its own program. This benchmark runs the grid of
``benchmarks/sweep_grid.py`` (4 configurations, one cohort) three ways, one after another on
the same machine, and reports the wall times and their ratios:

* ``sweep``: ``jaxseg sweep`` (one process, one compiled cohort; empty compilation cache);
* ``train, no cache``: one ``jaxseg train`` process per run with the persistent
  compilation cache off (every process compiles: today's scripts);
* ``train, shared cache``: the same with one (initially empty) cache shared by the
  processes, so only the first compiles.

It also checks that both ways reach the same validation Dice per run (the engine's
equivalence tests make them equal up to float reassociation).

Command (from the repository root; writes docs/bench_sweep_vs_train_cpu.json):
  python benchmarks/sweep_vs_train.py --out=docs/bench_sweep_vs_train_cpu.json
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags

flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
flags.DEFINE_string("grid", "benchmarks/sweep_grid.py", "The experiment file of the grid.")
flags.DEFINE_string("scratch", None, "Folder for the workdirs (default: a temporary one).")

JAXSEG = [sys.executable, "-m", "jaxseg.main"]


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _flag(key, value):
    return f"--config.{key}={value}"


def main(argv):
    del argv
    import jax

    from jaxseg.sweep import expand

    runs = expand.expand(*expand.load_experiment(flags.FLAGS.grid))
    scratch = flags.FLAGS.scratch or tempfile.mkdtemp(prefix="jaxseg_bench_")
    grid = flags.FLAGS.grid
    results = {}

    cache = os.path.join(scratch, "cache_sweep")
    results["sweep"] = _timed(JAXSEG + ["sweep", f"--config={grid}",
                                        f"--workdir={scratch}/sweep",
                                        f"--compilation_cache={cache}"])
    print(f"sweep: {results['sweep']:.1f} s", flush=True)
    dice = {"sweep": [r["dice"] for r in
                      json.load(open(f"{scratch}/sweep/results.json"))["runs"]]}
    for name, cache in (("train, no cache", ""),
                        ("train, shared cache", os.path.join(scratch, "cache_train"))):
        total, dice[name] = 0.0, []
        for k, run in enumerate(runs):
            workdir = f"{scratch}/{name.replace(', ', '_').replace(' ', '_')}/run{k}"
            total += _timed(JAXSEG + ["train", f"--config={grid}:single",
                                      f"--workdir={workdir}", f"--compilation_cache={cache}"]
                            + [_flag(key, v) for key, v in run.items()])
            summary = json.load(open(os.path.join(workdir, "summary.json")))
            dice[name].append(summary["replicas"][0]["best"]["dice"])
        results[name] = total
        print(f"{name}: {total:.1f} s", flush=True)
    if not flags.FLAGS.scratch:
        shutil.rmtree(scratch, ignore_errors=True)

    device = jax.devices()[0].device_kind
    lines = [f"device: {device} ({jax.default_backend()}), {os.cpu_count()} cores, "
             f"jax {jax.__version__}, python {platform.python_version()}, "
             f"{time.strftime('%Y-%m-%d')}", f"grid: {grid}, {len(runs)} runs", "",
             "| how | wall time (s) | sweep is faster by |", "|---|---|---|"]
    for name, t in results.items():
        lines.append(f"| {name} | {t:.1f} | {t / results['sweep']:.2f}x |")
    gap = max(abs(a - b) for name in dice for a, b in zip(dice[name], dice["sweep"],
                                                           strict=True))
    lines += ["", f"largest |val Dice difference| between the ways, per run: {gap:.2e}"]
    print("\n".join(lines))
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump({"device": device, "backend": jax.default_backend(),
                       "cores": os.cpu_count(), "jax": jax.__version__,
                       "date": time.strftime("%Y-%m-%d"), "grid": grid, "runs": runs,
                       "wall_time_s": results, "speedup": {
                           k: v / results["sweep"] for k, v in results.items()},
                       "val_dice": dice}, f, indent=1)


if __name__ == "__main__":
    app.run(main)
