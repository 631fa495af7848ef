"""Replica execution strategies: how R stacked replicas run inside one jitted program.

``fn`` is written for one replica; :func:`over_replicas` turns it into a function
of stacked arguments (leading axis R) plus shared arguments (the dataset):

* ``vmap``: one batched program; convolutions become grouped convolutions
  (``feature_group_count = R``): the point on GPU, a trap on XLA CPU (docs/design.md §6).
* ``unroll``: the replicas written out one after another at trace time; each
  replica is an ordinary program, so CPU speed is R times one replica's, at the
  price of a compile time that grows with R.
* ``map``: ``lax.map``, a device-side loop (slow on XLA CPU, docs/design.md §6).
* ``sequential``: one replica's program, compiled once and called R times per step from
  the host on that replica's own buffers (the stacked state is split into per-replica
  buffers once per epoch and joined back for evaluation and checkpoints); CPU speed is R
  times one replica's and the compile time does not grow with R.
  :class:`jaxseg.engine.cohort.Cohort` implements it (``split_rounds`` / ``join_rounds``);
  evaluation reads a replica's slice with :func:`take_chunk`.
* ``chunked``: ``vmap`` over chunks of ``train.chunk`` replicas, called once per chunk
  per step on the chunk's own buffers (as ``sequential``, which is ``chunk = 1``; ``vmap``
  is ``chunk = R``): the family in between, where a GPU trades grouped-convolution cost
  against launch overhead. R is padded with inert replicas to a multiple of the chunk.
* ``auto``: chosen where the cohort runs, by timing the candidates
  (:mod:`jaxseg.engine.autotune`); without a measurement, per backend from the
  measurements in ``docs/benchmarks.md``: ``sequential`` on CPU, ``vmap`` on GPU/TPU.

:func:`compiler_options` gives the XLA options the step and evaluation programs are
compiled with, also chosen per backend from measurements.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxseg.errors import JaxsegError, check_choice

STRATEGIES = ("auto", "vmap", "unroll", "map", "sequential", "chunked")
LOOPS = ("auto", "step", "scan")
XLA_OPTIONS = ("tuned", "default")


def chunk_size(strategy: str, chunk: int) -> int:
    """Replicas per call of a strategy that calls its program once per chunk (0: one call).

    ``sequential`` steps one replica per call, ``chunked`` ``chunk`` of them; the others
    step every replica in one call.
    """
    if strategy == "sequential":
        return 1
    if strategy == "chunked":
        if int(chunk) < 1:
            raise JaxsegError(f"train.chunk={chunk}: train.strategy=chunked needs a chunk "
                              "size >= 1 (replicas per call)")
        return int(chunk)
    return 0


def label(strategy: str, chunk: int = 0) -> str:
    """A strategy as one word: ``chunked:4`` for chunks of 4, else its name."""
    return f"chunked:{int(chunk)}" if strategy == "chunked" else strategy


def parse_label(text: str) -> tuple[str, int]:
    """The inverse of :func:`label`: ``"chunked:4"`` -> ``("chunked", 4)``."""
    name, _, chunk = text.partition(":")
    check_choice("train.strategy", name, STRATEGIES)
    return name, int(chunk or 0)


def resolve_strategy(strategy: str, backend: str | None = None) -> str:
    """Maps ``auto`` to the strategy measured fastest on ``backend`` (default: jax's).

    This is the table used without a measurement where the cohort runs (the planner's
    estimates, tiny cohorts); training measures (:mod:`jaxseg.engine.autotune`).
    """
    check_choice("train.strategy", strategy, STRATEGIES)
    if strategy != "auto":
        return strategy
    backend = backend or jax.default_backend()
    # CPU (docs/benchmarks.md): one replica's program called R times ran at 0.98-1.03x the
    # replicas one by one and compiled in constant time (25 s), where unroll gained 6-8% per
    # step but compiled in 41 s at R=2 and 113 s at R=4; vmap ran ~2x slower, lax.map 25x.
    return "sequential" if backend == "cpu" else "vmap"


def resolve_loop(loop: str, backend: str | None = None) -> str:
    """Maps ``auto`` to the epoch loop measured fastest on ``backend``."""
    check_choice("train.loop", loop, LOOPS)
    if loop != "auto":
        return loop
    backend = backend or jax.default_backend()
    # XLA CPU runs a rolled scan over U-Net steps ~17x slower than one dispatch per step
    # (docs/design.md §6); on GPU the loop stays on the device.
    return "step" if backend == "cpu" else "scan"


# XLA CPU hands convolutions, dots and reductions to YNNPACK by default. Its convolutions
# (weight gradients above all) ran 1.57x slower than XLA's own Eigen convolutions on the
# cmr96-size U-Net, while its reductions (batch-norm statistics) ran ~6x faster than XLA's
# loop emitter; with YNNPACK kept for reductions only, a training step took 0.67x the time
# of XLA's default (docs/benchmarks.md, "XLA CPU compiler options").
_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}

# For programs that run once or move data only (set-up, splitting state into rounds, a
# checkpoint's device copy): random-number ops compile slowly at XLA CPU's default
# optimisation level (docs/benchmarks.md), and a copy has nothing to optimise.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def compiler_options(choice: str = "tuned", backend: str | None = None) -> dict:
    """XLA options for the training and evaluation programs (``train.xla_options``).

    Args:
      choice: ``tuned`` (the options measured fastest on ``backend``) or ``default``
        (XLA's own).
      backend: ``cpu``, ``gpu``, ...; default: jax's default backend.

    Returns:
      The ``compiler_options`` to pass to ``jax.jit`` (empty where XLA's defaults won).
    """
    check_choice("train.xla_options", choice, XLA_OPTIONS)
    backend = backend or jax.default_backend()
    return dict(_CPU_OPTIONS) if choice == "tuned" and backend == "cpu" else {}


def tree_slice(tree, i: int):
    """Replica ``i`` of a stacked pytree."""
    return jax.tree.map(lambda x: x[i], tree)


def tree_stack(trees):
    """Stacks a list of pytrees along a new leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def over_replicas(fn: Callable, strategy: str, num_replicas: int) -> Callable:
    """Lifts a one-replica function to stacked replicas.

    Args:
      fn: ``fn(*per_replica, *shared) -> out`` for one replica.
      strategy: ``vmap`` | ``unroll`` | ``map`` (resolve ``auto`` first; ``sequential``
        lifts ``fn`` to a stack of one replica).
      num_replicas: R.

    Returns:
      ``g(per_replica: tuple, shared: tuple) -> stacked out``, where every leaf of
      ``per_replica`` has a leading axis R and ``shared`` is passed to every replica.
    """
    check_choice("train.strategy", strategy, STRATEGIES[1:])
    if strategy == "sequential":
        strategy, num_replicas = "unroll", 1
    elif strategy == "chunked":
        strategy = "vmap"
    if strategy == "vmap":
        def g(per_replica, shared):
            return jax.vmap(lambda *a: fn(*a, *shared))(*per_replica)
    elif strategy == "map":
        def g(per_replica, shared):
            return jax.lax.map(lambda a: fn(*a, *shared), per_replica)
    else:
        def g(per_replica, shared):
            return tree_stack([fn(*tree_slice(per_replica, r), *shared)
                               for r in range(num_replicas)])
    return g


def take_chunk(tree, r, size: int = 1):
    """Chunk ``r`` (a traced index) of ``size`` replicas of a stacked pytree."""
    return jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, r * size, size), tree)


def stack_rounds(outs: list, chunk: int = 1):
    """Joins the outputs of per-chunk rounds into one stack in replica order.

    Round ``r`` holds chunk ``r`` (``chunk`` replicas) of every device's share (leading
    axis: devices x chunk), so the stack is device-major: device ``d``'s replicas come
    before device ``d+1``'s.
    """
    if len(outs) == 1:
        return outs[0]

    def join(*xs):  # explicit sizes: some metric leaves are empty
        d = xs[0].shape[0] // chunk
        x = jnp.stack([x.reshape((d, chunk) + x.shape[1:]) for x in xs], 1)
        return x.reshape((len(xs) * xs[0].shape[0],) + xs[0].shape[1:])
    return jax.tree.map(join, *outs)
