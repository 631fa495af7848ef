"""The grid half of the PyTorch comparison, without flags (compare_torch.py, gpu_suite.py).

One ``jaxseg sweep`` of a grid against ``torch_reference.py --mode=train`` run once per
configuration: one process after another (the way the source studies ran their grids),
and ``parallel`` processes at a time with the cores shared between them.
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH = [sys.executable, os.path.join(HERE, "torch_reference.py")]
JAXSEG = [sys.executable, "-m", "jaxseg.main"]


def run(cmd: list[str]) -> tuple[float, str]:
    """Runs a command to completion; returns (wall seconds, its stdout)."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, out.stdout


def last_json(text: str) -> dict:
    """The last line of a program's output that is a JSON object."""
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def _torch_runs(runs, epochs, torch_args, parallel: int):
    """The PyTorch reference once per run: one after another, or ``parallel`` at a time.

    Returns:
      ``(wall seconds, best Dice per run)``.
    """
    cmds = [TORCH + ["--mode=train", f"--epochs={epochs}", f"--lr={run['optim.learning_rate']}",
                     f"--weight_decay={run['optim.weight_decay']}", *torch_args]
            for run in runs]
    if parallel <= 1:
        t0 = time.perf_counter()
        outs = [run(c)[1] for c in cmds]
        return time.perf_counter() - t0, [last_json(o)["best_dice"] for o in outs]
    # A careful user of a machine with few cores: `parallel` processes at a time, each with
    # an equal share of the cores (one thread each on 2 cores), in the order of the grid.
    threads = max(1, (os.cpu_count() or 1) // parallel)
    t0, pending, outs = time.perf_counter(), list(enumerate(cmds)), {}
    running = []
    while pending or running:
        while pending and len(running) < parallel:
            i, c = pending.pop(0)
            running.append((i, subprocess.Popen(c + [f"--threads={threads}"],
                                                stdout=subprocess.PIPE, text=True)))
        i, proc = running.pop(0)
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"torch run {i} failed ({proc.returncode})")
        outs[i] = out
    return time.perf_counter() - t0, [last_json(outs[i])["best_dice"] for i in range(len(cmds))]


def grid_comparison(grid: str, epochs: int, scratch: str, jaxseg_args=(), torch_args=(),
                    parallel: int = 2, channels_last: bool = False) -> dict:
    """One ``jaxseg sweep`` of ``grid`` against the PyTorch reference run per configuration.

    Args:
      grid: the experiment (``benchmarks/sweep_grid.py:grid8``).
      epochs: epochs of every run.
      scratch: a folder for the sweep and its compilation cache (empty: compiles counted).
      jaxseg_args: extra ``jaxseg sweep`` flags (``--config.data.source_dir=...``).
      torch_args: extra ``torch_reference.py`` flags, or None to leave PyTorch out.
      parallel: also run the PyTorch runs this many at a time (0 or 1: not).
      channels_last: also run the PyTorch runs (one by one, and ``parallel`` at a time) with
        ``--channels_last``: the memory format a careful PyTorch user picks on a CPU.

    Returns:
      ``{"grid", "runs", "epochs", "sweep_s", "jax_dice", "torch_grid_s", "torch_dice",
      "grid_speedup_sweep_vs_torch", "torch_parallel_s", ...}`` (PyTorch keys only when run;
      the channels_last runs' keys start with ``torch_cl_`` and ``grid_speedup_..._cl``).
    """
    from jaxseg.sweep import expand

    runs = expand.expand(*expand.load_experiment(grid))
    t_sweep, _ = run(JAXSEG + ["sweep", f"--config={grid}", f"--workdir={scratch}/sweep",
                                f"--config.train.epochs={epochs}",
                                f"--compilation_cache={scratch}/xla", *jaxseg_args])
    with open(f"{scratch}/sweep/results.json") as f:
        jax_dice = [r["dice"] for r in json.load(f)["runs"]]
    print(f"grid: jaxseg sweep {t_sweep:.1f} s", flush=True)
    res = {"grid": grid, "runs": runs, "epochs": epochs, "sweep_s": t_sweep,
           "jax_dice": jax_dice}
    with open(f"{scratch}/sweep/cohorts/c000/summary.json") as f:
        summary = json.load(f)
    res["sweep_c000_time_s"] = summary.get("time_s")
    res["sweep_c000_strategy"] = summary.get("strategy_choice")
    if torch_args is None:
        return res
    res["torch_parallel"] = parallel
    for prefix, suffix, extra in [("torch_", "", [])] + (
            [("torch_cl_", "_cl", ["--channels_last"])] if channels_last else []):
        args = list(torch_args) + extra
        t_torch, torch_dice = _torch_runs(runs, epochs, args, 1)
        print(f"grid: torch{suffix} one by one {t_torch:.1f} s", flush=True)
        res.update({f"{prefix}grid_s": t_torch, f"{prefix}dice": torch_dice,
                    f"grid_speedup_sweep_vs_torch{suffix}": t_torch / t_sweep})
        if parallel > 1:
            t_par, par_dice = _torch_runs(runs, epochs, args, parallel)
            print(f"grid: torch{suffix} {parallel} at a time {t_par:.1f} s", flush=True)
            res.update({f"{prefix}parallel_s": t_par, f"{prefix}parallel_dice": par_dice,
                        f"grid_speedup_sweep_vs_torch_parallel{suffix}": t_par / t_sweep})
    return res
