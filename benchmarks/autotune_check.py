"""Does ``train.strategy=auto`` choose what ``jaxseg bench`` measures fastest, and at what cost?

For the cmr96-size model (``benchmarks/cmr96_size.py``, 7 steps an epoch) and each R of
``--replicas``: first ``autotune.choose`` decides for a cohort of ``--epochs`` epochs (no
cache, its own 5% budget), then ``jaxseg bench``'s strategy table times every candidate at
the same R side by side. Reported per R: the choice, its bench step against the fastest
bench step (the target: within 5%), and the decision's cost as a share of the cohort's
estimated time (epochs x steps x the chosen step; the target: at most 5%).

Command (docs/benchmarks.md, "Choosing the strategy where it runs"):
  python benchmarks/autotune_check.py --replicas=1,4,32 --out=docs/bench_autotune_cpu.json
"""

import json
import os
import platform
import sys
import time

from absl import app, flags

flags.DEFINE_list("replicas", ["1", "4", "32"], "Cohort sizes R.")
flags.DEFINE_integer("epochs", 100, "Epochs of the cohort the decision is for.")
flags.DEFINE_integer("repeats", 3, "Timed steps per strategy in the bench table.")
flags.DEFINE_string("out", None, "Write the results as JSON to this file.")

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    del argv
    import jax

    sys.path.insert(0, HERE)
    import cmr96_size

    from jaxseg import bench
    from jaxseg.data import datasets
    from jaxseg.engine import autotune

    config = cmr96_size.get_config()
    config.train.epochs = flags.FLAGS.epochs
    data = datasets.load(config.data)
    steps = -(-len(data.train) // int(config.train.batch_size))
    res = {"device": jax.devices()[0].device_kind, "cores": os.cpu_count(),
           "jax": jax.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d"), "epochs": flags.FLAGS.epochs,
           "steps_per_epoch": steps, "rows": []}
    for r in (int(x) for x in flags.FLAGS.replicas):
        choice = autotune.choose(config, data, r, steps, use_cache=False)
        cands = autotune.candidates(r, jax.default_backend())
        table = bench.strategy_table(config, [r], cands if r > 1 else [],
                                     repeats=flags.FLAGS.repeats)
        timed = {row["strategy"] if row["R"] == r and r > 1 else "sequential": row["step_s"]
                 for row in table if row["R"] == r}
        fastest = min(timed, key=timed.get)
        chosen_s = timed.get(choice.label, timed[fastest])
        cohort_s = flags.FLAGS.epochs * steps * chosen_s
        row = {"R": r, "choice": choice.to_json(), "label": choice.label, "bench_step_s": timed,
               "fastest": fastest, "chosen_over_fastest": chosen_s / timed[fastest],
               "cost_share": choice.cost_s / cohort_s, "cohort_s": cohort_s}
        res["rows"].append(row)
        print(f"R={r}: auto chose {choice.label} ({choice.source}, {choice.cost_s:.0f} s = "
              f"{100 * row['cost_share']:.1f}% of ~{cohort_s:.0f} s); bench fastest {fastest}; "
              f"chosen/fastest {row['chosen_over_fastest']:.3f}; bench "
              + ", ".join(f"{k} {v:.3f}" for k, v in timed.items()), flush=True)
    print(json.dumps(res, indent=1))
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
