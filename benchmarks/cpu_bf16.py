"""Does XLA CPU use this CPU's AVX512-BF16 instructions for bfloat16 convolutions and dots?

Reads the CPU's flags (``/proc/cpuinfo``), then compiles a cmr96-size 3x3 convolution
(16x96x96x32 -> 32 channels) and a 1024x1024 matmul in float32 and in bfloat16 with
jaxseg's XLA options, with XLA's dumps on (``--xla_dump_to``), times each (median of 7)
and searches the dumped LLVM IR and assembly for the AVX512-BF16 instructions
(``vdpbf16ps``, ``vcvtne2ps2bf16``, their intrinsics ``llvm.x86.avx512bf16.*``) and for the
library calls the programs make instead. Prints one JSON line.

Command (docs/benchmarks.md, "Mixed precision on CPU"):
  python benchmarks/cpu_bf16.py --out=docs/bench_cpu_bf16.json
"""

import glob
import json
import os
import re
import sys
import tempfile
import time

UPCAST = r"\(param_\d[.\d]*: bf16\[[^\]]*\]\) -> f32"  # a wrapped bf16 -> f32 convert
OP = r"= {}\[[^\]]*\]\{{[^}}]*\}} (?:convolution|dot)\("  # a convolution or dot of a dtype


def main():
    out = sys.argv[sys.argv.index("--out") + 1] if "--out" in sys.argv else None
    dump = tempfile.mkdtemp(prefix="xla_dump_")
    os.environ["XLA_FLAGS"] = f"--xla_dump_to={dump} --xla_dump_hlo_as_text"
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxseg.engine import replicas

    flags_ = set(re.findall(r"\b(avx512\w*|amx\w*)", open("/proc/cpuinfo").read()))
    opts = replicas.compiler_options("tuned")
    rng = np.random.default_rng(0)
    cases = {
        "conv3x3": (lambda x, w: jax.lax.conv_general_dilated(
            x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")),
            (rng.random((16, 96, 96, 32)), rng.random((3, 3, 32, 32)))),
        "matmul": (lambda a, b: a @ b, (rng.random((1024, 1024)), rng.random((1024, 1024)))),
    }
    times = {}
    for name, (fn, args) in cases.items():
        for dt in ("float32", "bfloat16"):
            a = [jnp.asarray(v, dt) for v in args]
            f = jax.jit(fn, compiler_options=opts).lower(*a).compile()
            jax.block_until_ready(f(*a))
            t = []
            for _ in range(7):
                t0 = time.perf_counter()
                jax.block_until_ready(f(*a))
                t.append(time.perf_counter() - t0)
            times[f"{name}_{dt}"] = float(np.median(t))
    files = [p for p in glob.glob(os.path.join(dump, "**"), recursive=True) if os.path.isfile(p)]
    text = ""
    for path in files:
        with open(path, errors="ignore") as f:
            text += f.read()
    hlos = []
    for path in files:
        if path.endswith("cpu_after_optimizations.txt"):
            with open(path) as f:
                hlos.append(f.read())
    res = {"cpu_flags": sorted(flags_), "avx512_bf16_in_cpuinfo": "avx512_bf16" in flags_,
           "jax": jax.__version__, "date": time.strftime("%Y-%m-%d"), "median_s": times,
           "bf16_over_f32": {n: times[f"{n}_bfloat16"] / times[f"{n}_float32"] for n in cases},
           "dump_files": len(files),
           "dump_kinds": sorted({os.path.splitext(p)[1] for p in files}),
           "bf16_instructions_in_dumps": len(re.findall(
               r"vdpbf16ps|vcvtne2ps2bf16|vcvtneps2bf16|avx512bf16", text)),
           "library_calls_in_dumps": sorted(set(re.findall(
               r"(__xla_cpu_runtime_\w+|xnn_\w+|ynn_\w+|Eigen\w*)", text)))[:20],
           # Optimized HLO of the bfloat16 programs: is the convolution / dot itself f32,
           # fed by bf16 -> f32 converts (an upcast) or bf16?
           "optimized_hlo_of_bf16_programs": [
               {"convert_bf16_to_f32": len(re.findall(UPCAST, h)),
                "f32_conv_or_dot": len(re.findall(OP.format("f32"), h)),
                "bf16_conv_or_dot": len(re.findall(OP.format("bf16"), h))}
               for h in hlos if "bf16[" in h]}
    print(json.dumps(res))
    if out:
        with open(out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
