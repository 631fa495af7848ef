"""Replica execution strategies: how R stacked replicas run inside one jitted program.

``fn`` is written for one replica; :func:`over_replicas` turns it into a function
of stacked arguments (leading axis R) plus shared arguments (the dataset):

* ``vmap``: one batched program; convolutions become grouped convolutions
  (``feature_group_count = R``): the point on GPU, a trap on XLA CPU (GUIDE §3).
* ``unroll``: the replicas written out one after another at trace time; each
  replica is an ordinary program, so CPU speed is R times one replica's, at the
  price of a compile time that grows with R.
* ``map``: ``lax.map``, a device-side loop (slow on XLA CPU, GUIDE §3).
* ``auto``: chosen per backend from measurements (``docs/benchmarks.md``):
  ``unroll`` on CPU, ``vmap`` on GPU/TPU.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxseg.errors import check_choice

STRATEGIES = ("auto", "vmap", "unroll", "map")
LOOPS = ("auto", "step", "scan")


def resolve_strategy(strategy: str, backend: str | None = None) -> str:
    """Maps ``auto`` to the strategy measured fastest on ``backend`` (default: jax's)."""
    check_choice("train.strategy", strategy, STRATEGIES)
    if strategy != "auto":
        return strategy
    backend = backend or jax.default_backend()
    # CPU: unroll beat vmap 4.5x and lax.map 25x at R=2..4 (GUIDE §3, docs/benchmarks.md).
    return "unroll" if backend == "cpu" else "vmap"


def resolve_loop(loop: str, backend: str | None = None) -> str:
    """Maps ``auto`` to the epoch loop measured fastest on ``backend``."""
    check_choice("train.loop", loop, LOOPS)
    if loop != "auto":
        return loop
    backend = backend or jax.default_backend()
    # XLA CPU runs a rolled scan over U-Net steps ~17x slower than one dispatch per step
    # (GUIDE §3); on GPU the loop stays on the device.
    return "step" if backend == "cpu" else "scan"


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
      strategy: ``vmap`` | ``unroll`` | ``map`` (resolve ``auto`` first).
      num_replicas: R.

    Returns:
      ``g(per_replica: tuple, shared: tuple) -> stacked out``, where every leaf of
      ``per_replica`` has a leading axis R and ``shared`` is passed to every replica.
    """
    check_choice("train.strategy", strategy, STRATEGIES[1:])
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
