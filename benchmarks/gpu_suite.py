"""The GPU suite: every speed figure the project needs from one H100/H200, in one command.

Run through ``benchmarks/gpu_suite.sh`` (which installs the carried wheels first). Sections,
each written to ``OUT/gpu_suite.json`` as soon as it is done and summed up in
``OUT/gpu_suite.md``:

1. ``strategies``: one training step of R replicas under every strategy (``sequential``,
   ``vmap``, ``chunked`` with chunks of R/4, ``unroll`` at R <= 4) at R = 1, 4, 16, 64, for
   the cmr96-size model (base 16, depth 3, 96x96, batch 16) and the ACDC-size model (base
   16, depth 4, 256x256, batch 16), phantom data; each R's programs timed side by side
   (``jaxseg.bench``), with the speed-up over R single steps and the fraction of peak.
2. ``auto``: what ``train.strategy=auto`` chooses at R = 16 for the cmr96-size model, with
   its timings and cost.
3. ``dtype``: float32 against bfloat16 compute (``model.dtype``) at R = 1 and R = 16.
4. ``torch_step``: the PyTorch reference's step (``benchmarks/torch_reference.py``) on the
   same GPU, model and batch.
5. ``grid16``: ``benchmarks/sweep_grid.py:grid16`` (16 runs of the study base on cmr96,
   short epochs) as one ``jaxseg sweep`` against the PyTorch reference one run after
   another and two at a time (``benchmarks/torch_grid.py``, as ``compare_torch.py``).
6. ``acdc``: ``experiments/acdc_baseline.py`` trained for ``--acdc_epochs`` epochs, with its
   per-volume validation Dice.

The whole suite keeps to ``--budget_s`` (480 s on a GPU): a section that would start after
the budget is skipped and says so. ``--tiny`` runs every section with tiny models (depth 1), R = 1
and 4 (no ``unroll``) and one epoch, so that CI exercises the code on CPU (the PyTorch
runs are skipped where torch is not installed); its numbers mean nothing.

Command (on the GPU machine, from the repository root; the data and wheels prepared by
``benchmarks/gpu_prepare.sh``):
  bash benchmarks/gpu_suite.sh $OUT
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

flags.DEFINE_string("out", None, "Folder for gpu_suite.json and gpu_suite.md.")
flags.DEFINE_bool("tiny", False, "Tiny models and one epoch (CI, on CPU): checks the code only.")
flags.DEFINE_float("budget_s", 480.0, "Wall-time budget of the whole suite.")
flags.DEFINE_string("data", os.path.join(ROOT, ".gpu_data"), "Folder with cmr96/ and acdc/ "
                    "(default: .gpu_data, prepared by gpu_prepare.sh; else ../shared/data).")
flags.DEFINE_integer("grid_epochs", 3, "grid16: epochs of every run.")
flags.DEFINE_integer("acdc_epochs", 10, "acdc: epochs of the baseline.")
flags.DEFINE_string("tfds_dir", os.path.join(tempfile.gettempdir(), "jaxseg_gpu_suite_tfds"),
                    "TFDS cache of the prepared data sets.")
flags.DEFINE_list("sections", ["strategies", "auto", "dtype", "torch_step", "grid16", "acdc"],
                  "Sections to run.")

FLAGS = flags.FLAGS
JAXSEG = [sys.executable, "-m", "jaxseg.main"]


def _data_dir(name: str) -> str:
    for base in (FLAGS.data, os.path.join(ROOT, "..", "shared", "data")):
        if os.path.isdir(os.path.join(base, name)):
            return os.path.abspath(os.path.join(base, name))
    return ""


def model_config(size: str):
    """The cmr96-size or ACDC-size benchmark model on phantom data (tiny in ``--tiny``)."""
    from jaxseg import configs

    c = configs.default()
    px, depth, n = {"cmr96": (96, 3, 112), "acdc": (256, 4, 64)}[size]
    if FLAGS.tiny:  # compile-bound: the smallest U-Net
        px, depth, n = 16, 1, 16
    c.data.phantom.size, c.data.phantom.num_train, c.data.phantom.num_val = px, n, 8
    c.data.image_size = px
    c.model.base_width = 4 if FLAGS.tiny else 16
    c.model.depth = depth
    c.augment.hflip = c.augment.vflip = True
    c.train.batch_size = 8 if FLAGS.tiny else 16
    c.data.tfds_dir = FLAGS.tfds_dir
    return c


def strategies_for(r: int) -> list[str]:
    """The strategies timed at R replicas."""
    if r == 1:
        return ["sequential"]
    out = ["sequential", "vmap"]
    if r >= 8:
        out.append(f"chunked:{r // 4}")
    elif r >= 4:
        out.append("chunked:2")
    if r <= 4 and not FLAGS.tiny:  # unroll's compile time grows with R
        out.append("unroll")
    return out


def section_strategies(res):
    from jaxseg import bench
    from jaxseg.data import datasets

    rows = []
    counts = (1, 4) if FLAGS.tiny else (1, 4, 16, 64)
    # tiny (CI): the cmr96-size model only; the ACDC-size one runs the same code, bigger.
    for size in ("cmr96",) if FLAGS.tiny else ("cmr96", "acdc"):
        config = model_config(size)
        data = datasets.load(config.data)
        single = None
        for r in counts:
            if _over_budget(res):
                rows.append({"model": size, "R": r, "skipped": "over the suite's budget"})
                continue
            programs, failed = [], []
            for st in strategies_for(r):
                try:
                    programs.append((st, bench.program(config, data, r, st)))
                except Exception as e:  # noqa: BLE001 - out of memory at large R: say so
                    failed.append({"model": size, "R": r, "strategy": st,
                                   "error": str(e).splitlines()[0][:300]})
            results = bench.interleave([p for _, p in programs], 3 if FLAGS.tiny else 5)
            for (st, _), m in zip(programs, results, strict=True):
                if r == 1:
                    single = m["step_s"]
                m.pop("steps_s", None)
                # speedup: R single steps over this step (the cohort's throughput in
                # single replicas).
                rows.append({"model": size, "R": r, "strategy": st, **m,
                             "speedup": r * single / m["step_s"] if single else None})
            rows.extend(failed)
            del programs
    res["strategies"] = rows


def section_auto(res):
    from jaxseg.data import datasets
    from jaxseg.engine import autotune

    config = model_config("cmr96")
    # tiny: a budget that lets the measurement run (a tiny cohort would skip it).
    config.train.epochs, config.train.autotune_share = 100, 1e4 if FLAGS.tiny else 0.05
    r = 4 if FLAGS.tiny else 16
    choice = autotune.choose(config, datasets.load(config.data), r, 7, use_cache=False)
    res["auto"] = {"R": r, **choice.to_json(), "label": choice.label}


def section_dtype(res):
    from jaxseg import bench

    rows = []
    for r, st in ((1, "sequential"),) + (() if FLAGS.tiny else ((16, "vmap"),)):
        for row in bench.variants_table(model_config("cmr96"), {
                "float32": ({}, None), "bfloat16": ({"model.dtype": "bfloat16"}, None)},
                num_replicas=r, strategy=st, repeats=3 if FLAGS.tiny else 5):
            row.pop("steps_s", None)
            rows.append({"R": r, "strategy": st, **row})
    res["dtype"] = rows


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _cuda() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def section_torch_step(res):
    if not _torch_available():
        res["torch_step"] = {"skipped": "torch is not installed"}
        return
    out = subprocess.run([sys.executable, os.path.join(HERE, "torch_reference.py"),
                          "--mode=step", "--synthetic", f"--device={_cuda()}",
                          f"--steps={2 if FLAGS.tiny else 20}"],
                         check=True, capture_output=True, text=True)
    res["torch_step"] = json.loads(out.stdout.strip().splitlines()[-1])


def section_grid16(res):
    import torch_grid

    cmr96 = _data_dir("cmr96")
    if not cmr96:
        res["grid16"] = {"skipped": "no cmr96 folder (gpu_prepare.sh)"}
        return
    extra = [f"--config.data.source_dir={cmr96}", f"--config.data.tfds_dir={FLAGS.tfds_dir}"]
    if FLAGS.tiny:
        extra += ["--config.model.base_width=4", "--config.model.depth=1",
                  "--config.data.image_size=32"]
    torch_args = [f"--data={cmr96}", f"--device={_cuda()}"] if _torch_available() else None
    res["grid16"] = torch_grid.grid_comparison(
        "benchmarks/sweep_grid.py:grid16" if not FLAGS.tiny else "benchmarks/sweep_grid.py",
        1 if FLAGS.tiny else FLAGS.grid_epochs, tempfile.mkdtemp(prefix="jaxseg_grid16_"),
        jaxseg_args=extra, torch_args=torch_args, parallel=1 if FLAGS.tiny else 2)


def section_acdc(res):
    acdc = _data_dir("acdc")
    if not acdc:
        res["acdc"] = {"skipped": "no acdc folder (gpu_prepare.sh)"}
        return
    wd = tempfile.mkdtemp(prefix="jaxseg_acdc_")
    args = ["--config=experiments/acdc_baseline.py", f"--workdir={wd}",
            f"--config.data.source_dir={acdc}", "--config.eval.every=1",
            f"--config.train.epochs={1 if FLAGS.tiny else FLAGS.acdc_epochs}",
            f"--config.data.tfds_dir={FLAGS.tfds_dir}"]
    if FLAGS.tiny:  # 224 px: the size the data tests build (one TFDS preparation in CI)
        args += ["--config.data.image_size=224", "--config.model.base_width=4",
                 "--config.model.depth=1", "--config.data.fraction=0.05",
                 "--config.eval.hd95=false"]
    t0 = time.perf_counter()
    subprocess.run(JAXSEG + ["train", *args], check=True, capture_output=True, text=True)
    with open(os.path.join(wd, "summary.json")) as f:
        s = json.load(f)
    best = s["replicas"][0]["best"]
    res["acdc"] = {"wall_s": time.perf_counter() - t0, "epochs": s["epochs"],
                   "best_epoch": s["replicas"][0]["best_epoch"],
                   "volume_dice": best.get("volume_dice"), "dice": best.get("dice"),
                   "hd95": best.get("hd95"), "hd95_unit": best.get("hd95_unit"),
                   "time_s": s.get("time_s")}
    shutil.rmtree(wd, ignore_errors=True)


SECTIONS = {"strategies": section_strategies, "auto": section_auto, "dtype": section_dtype,
            "torch_step": section_torch_step, "grid16": section_grid16, "acdc": section_acdc}
_START = time.perf_counter()


def _over_budget(res) -> bool:
    return time.perf_counter() - _START > FLAGS.budget_s


def markdown(res: dict) -> str:
    """The suite's results as Markdown tables."""
    out = [f"# GPU suite: {res['device']} ({res['date']})", "",
           f"jax {res['jax']}, python {res['python']}, {'tiny mode' if res['tiny'] else ''}"
           f" total {res.get('total_s', 0):.0f} s.", ""]
    rows = [r for r in res.get("strategies", []) if "step_s" in r]
    if rows:
        out += ["| model | R | strategy | step (s) | compile (s) | x single | of peak |",
                "|---|---|---|---|---|---|---|"]
        for r in rows:
            peak = "-" if r.get("peak_fraction") is None else f"{100 * r['peak_fraction']:.1f}%"
            out.append(f"| {r['model']} | {r['R']} | {r['strategy']} | {r['step_s']:.4f} | "
                       f"{r['compile_s']:.1f} | {r['speedup']:.2f} | {peak} |")
        out.append("")
    for r in res.get("strategies", []):
        if "step_s" not in r:
            out.append(f"- {r['model']} R={r['R']} {r.get('strategy', '')}: "
                       f"{r.get('error') or r.get('skipped')}")
    if "auto" in res:
        a = res["auto"]
        out += ["", f"auto at R={a['R']}: **{a['label']}** ({a['source']}, {a['cost_s']:.0f} s "
                    f"of {a['budget_s']:.0f} s budget)", ""]
    if res.get("dtype"):
        out += ["| R | strategy | dtype | step (s) | ratio to float32 |", "|---|---|---|---|---|"]
        for r in res["dtype"]:
            out.append(f"| {r['R']} | {r['strategy']} | {r['variant']} | {r['step_s']:.4f} | "
                       f"{r['ratio']:.2f} |")
        out.append("")
    for name in ("torch_step", "grid16", "acdc"):
        if name in res:
            out.append(f"- {name}: " + json.dumps(
                {k: v for k, v in res[name].items() if not isinstance(v, (list, dict))}))
    for name, err in res.get("errors", {}).items():
        out.append(f"- {name} failed: {err}")
    return "\n".join(out) + "\n"


def main(argv):
    del argv
    import jax

    os.makedirs(FLAGS.out, exist_ok=True)
    cache = os.path.join(tempfile.gettempdir(), "jaxseg_gpu_suite_xla")
    jax.config.update("jax_compilation_cache_dir", cache)
    d = jax.devices()[0]
    res = {"device": d.device_kind, "platform": d.platform, "jax": jax.__version__,
           "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
           "tiny": FLAGS.tiny, "budget_s": FLAGS.budget_s, "errors": {}, "section_s": {}}

    def write():
        res["total_s"] = time.perf_counter() - _START
        with open(os.path.join(FLAGS.out, "gpu_suite.json"), "w") as f:
            json.dump(res, f, indent=1, default=str)
        with open(os.path.join(FLAGS.out, "gpu_suite.md"), "w") as f:
            f.write(markdown(res))

    for name in FLAGS.sections:
        if _over_budget(res):
            res[name] = {"skipped": "over the suite's budget"}
            continue
        t0 = time.perf_counter()
        print(f"[gpu_suite] {name} ...", flush=True)
        try:
            SECTIONS[name](res)
        except Exception as e:  # noqa: BLE001 - one section's failure keeps the others
            detail = getattr(e, "stderr", None) or str(e)
            res["errors"][name] = f"{type(e).__name__}: {detail[-1500:]}"
            print(f"[gpu_suite] {name} failed: {res['errors'][name]}", flush=True)
        res["section_s"][name] = time.perf_counter() - t0
        print(f"[gpu_suite] {name}: {res['section_s'][name]:.0f} s", flush=True)
        write()
    write()
    print(markdown(res))
    if res["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    os.chdir(ROOT)
    app.run(main)
