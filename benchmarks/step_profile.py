"""One training step op by op: jaxseg's (jax.profiler) against PyTorch's (torch.profiler).

The cmr96-size U-Net (``benchmarks/cmr96_size.py``: base 16, depth 3, batch 16, 96x96, CE +
Dice, Adam, flips) in both: jaxseg's compiled training step for one replica as ``jaxseg
bench`` runs it, and the PyTorch reference's ``train_step`` (``benchmarks/torch_reference.py``,
the same model, loss, optimizer and batch; random data of cmr96's shapes). Each is timed
without a profiler first (median of ``--steps``), then profiled over ``--steps`` more, and
every op's time is put in one of the groups below, forward and backward apart:

- jaxseg: the events XLA CPU's thunk runtime records per HLO instruction (``hlo_op``), each
  looked up in the compiled module for its opcode, shape and ``op_name`` metadata (flax
  module paths, ``transpose(jvp(...))`` for the backward pass, the step's own named scopes
  ``batch``, ``loss``, ``optimizer``, ``guard``, ``max_pool2``). A backward convolution
  whose output has a kernel's shape is a weight gradient, the others input gradients.
- PyTorch: the profiler's ops by self CPU time, grouped by the module or autograd node
  they run under (modules' forwards are labelled by hooks; ``autograd::engine::
  evaluate_function: XBackward0`` for the backward; ``Optimizer.step``). PyTorch computes
  a convolution's input and weight gradients in one op (``convolution_backward``), so its
  backward convolutions are one group.

An op's time is its wall time from start to completion, with the threads it uses inside
(jaxseg: from the thunk's start to the executor's ``end:`` mark, since a convolution's thunk
returns once its work is handed to the intra-op pool; PyTorch: the op's self time on the
thread that called it). XLA CPU runs independent thunks side by side, so jaxseg's sum can
exceed its step's wall time; PyTorch runs its ops one after another. Copies and layout
changes (XLA ``copy``/``transpose`` thunks and fusions, PyTorch ``copy_``/``clone``/
``contiguous``/``permute``) are their own group wherever they run.

Command (from the repository root, with the ``bench`` extra installed, on an idle machine):
  python benchmarks/step_profile.py --out=docs/bench_step_profile_cpu.json
"""

import collections
import glob
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time

from absl import app, flags

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# Beside this file; it defines --steps (timed steps, and profiled steps, per side here) and
# --threads (torch threads, 0: every core).
import torch_reference as ref  # noqa: E402

flags.DEFINE_string("out", None, "Write the results as JSON to this file.")
flags.DEFINE_integer("top", 0, "Also print the N slowest XLA thunks with their group.")

_INSTR = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (?:([a-z0-9]+)\[([\d,]*)\][^ ]*|\(.*?\)) "
                    r"([\w\-]+)\(")
_OP_NAME = re.compile(r'op_name="([^"]*)"')
LAYOUT_OPCODES = ("copy", "transpose", "bitcast", "copy-start", "copy-done")
CONTAINERS = ("call", "while", "conditional")


def hlo_instructions(hlo_text: str) -> dict:
    """``name -> (opcode, shape tuple, op_name)`` for every instruction of an HLO module."""
    out = {}
    for line in hlo_text.splitlines():
        m = _INSTR.match(line)
        if m:
            name, _, dims, opcode = m.groups()
            op = _OP_NAME.search(line)
            shape = tuple(int(d) for d in (dims or "").split(",") if d)
            out[name] = (opcode, shape, op.group(1) if op else "")
    return out


def _kernel_shaped(shape: tuple) -> bool:
    # A 3x3 or 1x1 kernel, HWIO or with the features first (OHWI: how XLA CPU computes a
    # weight gradient, batch and features swapped); activations are at least 12x12.
    return len(shape) == 4 and any(shape[i] == shape[i + 1] <= 3 for i in range(3))


def jax_group(name: str, instr: dict) -> str:
    """The group of one XLA thunk (see the module docstring)."""
    opcode, shape, op_name = instr.get(name, ("", (), ""))
    pass_ = "backward" if "transpose(" in op_name else "forward"
    if opcode in LAYOUT_OPCODES or name.startswith(("copy", "transpose")) \
            or "transpose_copy" in name:
        return "copies and layout changes"
    for scope, group in (("/batch/", "batch gather + augmentation"), ("/optimizer/", "optimizer"),
                         ("/guard/", "finite check + keep/skip select")):
        if scope in op_name or op_name.endswith(scope[:-1]):
            return group
    if re.search(r"[/(]loss[/)]", op_name) or "log_softmax" in op_name:
        return f"loss ({pass_})"
    if "BatchNorm" in op_name:
        return f"batch norm ({pass_})"
    if "max_pool2" in op_name:
        return f"pooling ({pass_})"
    if "Upsample" in op_name:
        return f"upsampling ({pass_})"
    if "conv_general_dilated" in op_name or opcode == "convolution":
        # XLA leaves the weight gradients' convolutions without metadata: told by shape.
        if _kernel_shaped(shape):
            return "convolution weight gradient"
        return "convolution forward" if pass_ == "forward" else "convolution input gradient"
    if re.search(r"/Conv_\d+/", op_name):  # a convolution's bias: its add and its gradient
        return f"convolution bias ({pass_})"
    if "relu" in op_name or (pass_ == "backward" and "ConvBlock" in op_name
                             and op_name.endswith("/select_n")):  # ReLU's gradient: a select
        return f"relu ({pass_})"
    if "concatenate" in op_name or "split" in op_name:
        return f"skip concatenation ({pass_})"
    return "other"


def profile_jax(steps: int) -> dict:
    """jaxseg's step: wall median, and the profiled thunk times by group (seconds per step)."""
    import cmr96_size
    import jax

    from jaxseg import bench
    from jaxseg.data import datasets

    config = cmr96_size.get_config()
    prog = bench.program(config, datasets.load(config.data), 1, "unroll")
    wall = [prog.run() for _ in range(steps)]
    instr = hlo_instructions(prog.compiled.as_text())
    trace_dir = tempfile.mkdtemp(prefix="jaxseg_profile_")
    with jax.profiler.trace(trace_dir):
        for _ in range(steps):
            prog.run()
    (path,) = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    # A thunk's own event covers its dispatch; convolutions and other library calls then
    # finish on the intra-op thread pool, and the executor marks the completion with an
    # "end: <op>" event. An op's time is from its start to its completion (i-th start with
    # i-th end: each thunk runs once per step, a loop body's once per iteration).
    starts, ends = collections.defaultdict(list), collections.defaultdict(list)
    for plane in jax.profiler.ProfileData.from_file(path).planes:
        for line in plane.lines:
            for ev in line.events:
                if ev.name.startswith("end: "):
                    ends[ev.name[5:]].append(ev.start_ns + ev.duration_ns)
                    continue
                op = dict(ev.stats).get("hlo_op")
                if op is not None:
                    starts[op].append((ev.start_ns, ev.start_ns + ev.duration_ns))
    groups, unmatched, per_op = collections.Counter(), collections.Counter(), collections.Counter()
    for op, spans in starts.items():
        done = sorted(ends.get(op, []))
        spans.sort()
        if op in instr and instr[op][0] in CONTAINERS:
            continue  # its body's thunks are counted themselves
        for i, (t0, t1) in enumerate(spans):
            t = (max(t1, done[i]) if i < len(done) else t1) - t0
            groups[jax_group(op, instr)] += t * 1e-9 / steps
            per_op[op] += t * 1e-9 / steps
        if op not in instr:
            unmatched[op] += 1
    return {"step_s": statistics.median(wall), "groups_s": dict(groups),
            "ops_sum_s": sum(groups.values()), "unmatched_thunks": dict(unmatched),
            "slowest": [(op, t, jax_group(op, instr), *instr.get(op, ("", (), ""))[:2],
                         instr.get(op, ("", (), ""))[2][-90:])
                        for op, t in per_op.most_common(flags.FLAGS.top)],
            # every thunk: seconds per step, opcode, shape and op_name (to re-group offline)
            "ops": {op: [t, *instr.get(op, ("", (), ""))] for op, t in per_op.items()}}


_BACKWARD = {"ConvolutionBackward0": "convolution backward (input + weight)",
             "NativeBatchNormBackward0": "batch norm (backward)",
             "MaxPool2DWithIndicesBackward0": "pooling (backward)",
             "ReluBackward0": "relu (backward)", "CatBackward0": "skip concatenation (backward)"}
_TORCH_LAYOUT = ("aten::copy_", "aten::clone", "aten::contiguous", "aten::to",
                 "aten::_to_copy", "aten::permute")


def torch_group(ev) -> str:
    """The group of one PyTorch profiler event, from itself and the scopes above it."""
    if ev.name in _TORCH_LAYOUT:
        return "copies and layout changes"
    chain, e = [], ev
    while e is not None:
        chain.append(e.name)
        e = e.cpu_parent
    for name in chain:
        if name.startswith("Optimizer.") or name == "zero_grad":
            return "optimizer"
        if name.startswith("autograd::engine::evaluate_function: "):
            node = name.split(": ", 1)[1]
            if node == "ConvolutionBackward0" and ev.input_shapes and any(
                    len(s) == 4 and s[2:] == [2, 2] for s in ev.input_shapes):
                return "upsampling (backward)"
            return _BACKWARD.get(node, "loss (backward)")
        if name.startswith("fwd:"):
            return name[4:]
        if name == "loss":
            return "loss (forward)"
        if name == "augment":
            return "batch gather + augmentation"
    if ev.name == "aten::max_pool2d_with_indices" or ev.name == "aten::max_pool2d":
        return "pooling (forward)"
    if ev.name == "aten::cat":
        return "skip concatenation (forward)"
    return "other"


def profile_torch(steps: int, threads: int) -> dict:
    """The PyTorch reference's step: wall median, and self CPU time by group (s per step)."""
    import torch
    from torch import nn

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ref.UNet()
    opt = ref.make_optimizer(model, 1e-3, 1e-4)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 96, 96, generator=gen)
    y = torch.randint(0, 4, (16, 96, 96), generator=gen)
    kinds = {nn.Conv2d: "convolution forward", nn.ConvTranspose2d: "upsampling (forward)",
             nn.BatchNorm2d: "batch norm (forward)", nn.ReLU: "relu (forward)"}
    for m in model.modules():
        if type(m) in kinds:  # label each module's forward ops (profiler scopes)
            label = "fwd:" + kinds[type(m)]
            m.register_forward_pre_hook(lambda mod, a, label=label: mod.__dict__.__setitem__(
                "_scope", torch.profiler.record_function(label).__enter__()))
            m.register_forward_hook(lambda mod, a, out: mod.__dict__.pop("_scope").__exit__(
                None, None, None))
    loss_fn = ref.loss_fn

    def step():
        with torch.profiler.record_function("augment"):
            xb, yb = ref._flip(x, y, -1, gen)
            xb, yb = ref._flip(xb, yb, -2, gen)
        opt.zero_grad(set_to_none=True)
        logits = model(xb)
        with torch.profiler.record_function("loss"):
            loss = loss_fn(logits, yb)
        loss.backward()
        opt.step()
        return float(loss)

    for _ in range(3):
        step()
    wall = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        wall.append(time.perf_counter() - t0)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU],
                                record_shapes=True) as prof:
        for _ in range(steps):
            step()
    groups = collections.Counter()
    for ev in prof.events():
        groups[torch_group(ev)] += ev.self_cpu_time_total * 1e-6 / steps
    return {"step_s": statistics.median(wall), "groups_s": dict(groups),
            "ops_sum_s": sum(groups.values()), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def table(jx: dict, th: dict) -> str:
    """The two profiles side by side (ms per step), largest jaxseg group first."""
    names = sorted(set(jx["groups_s"]) | set(th["groups_s"]),
                   key=lambda g: -jx["groups_s"].get(g, 0.0))
    lines = ["| group | jaxseg (ms) | PyTorch (ms) |", "|---|---|---|"]
    for g in names:
        a, b = jx["groups_s"].get(g), th["groups_s"].get(g)
        lines.append(f"| {g} | {'' if a is None else f'{a * 1e3:.1f}'} | "
                     f"{'' if b is None else f'{b * 1e3:.1f}'} |")
    lines.append(f"| sum of the ops | {jx['ops_sum_s'] * 1e3:.1f} | {th['ops_sum_s'] * 1e3:.1f} |")
    lines.append(f"| step, wall (median, unprofiled) | {jx['step_s'] * 1e3:.1f} | "
                 f"{th['step_s'] * 1e3:.1f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    import jax

    steps = flags.FLAGS.steps
    jx = profile_jax(steps)
    th = profile_torch(steps, flags.FLAGS.threads)
    res = {"device": jax.devices()[0].device_kind, "cores": os.cpu_count(),
           "jax": jax.__version__, "python": platform.python_version(),
           "date": time.strftime("%Y-%m-%d"), "steps": steps, "jaxseg": jx, "torch": th}
    print(table(jx, th))
    for row in jx["slowest"]:
        print(f"{row[1] * 1e3:8.2f} ms  {row[0]:40s} {row[2]:32s} {row[3]} {row[4]} {row[5]}")
    if jx["unmatched_thunks"]:
        print("thunks not found in the HLO text:", jx["unmatched_thunks"])
    if flags.FLAGS.out:
        with open(flags.FLAGS.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    app.run(main)
