"""Whether a ``sequential`` step copies whole state buffers per call, and what splitting costs.

A ``sequential`` cohort calls one replica's compiled training step once per replica. Before
each round had buffers of its own, that step read its replica's slice of the stacked state
and wrote it back, and XLA CPU copied whole ``f32[R, ...]`` Adam moments and parameters on
every call (292 copies at R=2, 296 at R=32; docs/benchmarks.md "Large sequential cohorts"),
an O(R) memory traffic per call. Now :meth:`jaxseg.engine.cohort.Cohort.split_rounds` gives every
replica its own buffers once per epoch and :meth:`~jaxseg.engine.cohort.Cohort.join_rounds` stacks
them back for evaluation and checkpoints.

For each R this compiles the cmr96-size cohort's step (``benchmarks/cmr96_size.py``) and
counts, in XLA's optimized HLO, the ``copy`` instructions whose result has the shape of a
state argument and their size per call (which must not grow with R), and times one
split + join of the cohort's state (paid once per epoch), median of ``--repeats``.

Command (from the repository root):
  python benchmarks/sequential_copies.py --replicas=2,32 --out=docs/bench_sequential_copies_cpu.json
"""

import argparse
import datetime
import json
import re
import time

import jax
import numpy as np

from jaxseg import bench
from jaxseg.data import datasets
from jaxseg.sweep import expand


def _hlo_shape(x) -> str:
    return f"{x.dtype.name.replace('float', 'f')}[{','.join(map(str, x.shape))}]"


def state_copies(program: bench._Program) -> tuple[int, float]:
    """Copies in the compiled step whose result is shaped like a state buffer, and their MiB.

    Whole-stack copies (the old fault) make the MiB grow with R; one replica's do not.
    """
    leaves = [x for x in jax.tree.leaves(program.parts[0][0]) if x.ndim > 1]
    size = {_hlo_shape(x): x.nbytes for x in leaves}
    found = re.findall(r"= (\w+\[[0-9,]*\])\{[^}]*\} copy\(", program.compiled.as_text())
    found = [shape for shape in found if shape in size]
    return len(found), sum(size[shape] for shape in found) / 2**20


def split_join_s(program: bench._Program, cohort, repeats: int) -> float:
    """Median seconds of one join + split of the cohort's state (once per epoch).

    The first (compiling) call is not counted.
    """
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        state = cohort.join_rounds([part[0] for part in program.parts])
        for part, st in zip(program.parts, cohort.split_rounds(state), strict=True):
            part[0] = st
        jax.block_until_ready([part[0] for part in program.parts])
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="2,32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    module, _ = expand.load_experiment("benchmarks/cmr96_size.py")
    config = module.get_config()
    data = datasets.load(config.data)
    rows = []
    for r in [int(x) for x in args.replicas.split(",")]:
        program = bench._Program(config, data, r, "sequential")
        step = float(np.median([program.run() for _ in range(args.repeats)]))
        copies, mib = state_copies(program)
        rows.append({"replicas": r, "state_copies_per_call": copies, "copied_mib_per_call": mib,
                     "state_mib": sum(x.nbytes for p in program.parts
                                      for x in jax.tree.leaves(p[0])) / 2**20,
                     "step_all_replicas_s": step,
                     "split_join_s": split_join_s(program, program.cohort, args.repeats)})
        print(rows[-1], flush=True)
    out = {"device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
           "jax": jax.__version__, "date": datetime.date.today().isoformat(),
           "command": "python benchmarks/sequential_copies.py --replicas=" + args.replicas,
           "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
