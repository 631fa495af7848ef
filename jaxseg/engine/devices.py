"""The replica axis on several devices: a 1-D ``Mesh``, padding, sharding, host views.

A cohort of R replicas on D devices is padded to ``ceil(R / D) * D`` replicas with inert
copies of replica 0 (never alive, never in the results), and every per-replica array is
placed with ``NamedSharding(mesh, P("replica"))``: each device holds its own replicas, and
the step runs under ``shard_map``, each device running its local replicas with the chosen
strategy, so nothing crosses devices inside a step (docs/design.md §6). The dataset is replicated.

With one device (the default on a CPU machine) all of this is the identity: no mesh, no
padding, plain arrays.
"""

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxseg.errors import JaxsegError

AXIS = "replica"
REPLICA = P(AXIS)
SHARED = P()


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Starts JAX's multi-host runtime (``jax.distributed.initialize``), one process per host.

    Args:
      coordinator_address: ``host:port`` of process 0; None lets JAX read it from the
        environment (SLURM, or ``JAX_COORDINATOR_ADDRESS``/``JAX_NUM_PROCESSES``/
        ``JAX_PROCESS_ID``).
      num_processes: the number of processes.
      process_id: this process's index.
    """
    # CPU processes exchange the host views of sharded arrays through gloo collectives.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)


def replica_mesh(num_devices: int = 0) -> Mesh | None:
    """The mesh a cohort's replicas are placed on (None for a single device).

    Args:
      num_devices: how many of ``jax.devices()`` to use (0: all of them, across every
        process of a multi-host run).

    Returns:
      A 1-D mesh with axis ``"replica"``, or None when only one device is used.
    """
    devices = jax.devices()
    n = len(devices) if num_devices <= 0 else int(num_devices)
    if n > len(devices):
        raise JaxsegError(f"train.devices={num_devices} but only {len(devices)} device(s) "
                          f"are visible ({devices[0].platform})")
    if n == 1:
        return None
    return Mesh(np.array(devices[:n]), (AXIS,))


def device_count(setting: int = 0) -> int:
    """How many devices ``train.devices`` asks for (0: every visible one; at most that)."""
    n = len(jax.devices())
    return n if int(setting) <= 0 else min(int(setting), n)


def padded_size(num_replicas: int, mesh: Mesh | None, multiple: int = 1) -> int:
    """R rounded up to a multiple of the mesh's device count times ``multiple``."""
    d = (1 if mesh is None else mesh.devices.size) * max(int(multiple), 1)
    return int(math.ceil(num_replicas / d) * d)


def pad(tree, size: int):
    """Pads every leaf's leading (replica) axis to ``size`` with copies of replica 0."""
    def one(x):
        x = np.asarray(x)
        if x.shape[0] == size:
            return x
        return np.concatenate([x, np.repeat(x[:1], size - x.shape[0], axis=0)])
    return jax.tree.map(one, tree)


def place(tree, mesh: Mesh | None, spec=REPLICA):
    """Puts a host tree on the devices: sharded over replicas (or replicated with SHARED)."""
    if mesh is None:
        return jax.tree.map(jax.numpy.asarray, tree)
    sharding = NamedSharding(mesh, spec)

    def one(x):
        x = np.asarray(x)
        # Every process builds the global array from its own copy of the host values and
        # keeps the shards of its devices (works in one process and across hosts).
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])
    return jax.tree.map(one, tree)


def to_host(tree, num_replicas: int | None = None):
    """A device tree as NumPy on every process (gathered), cut to the real replicas."""
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            from jax.experimental import multihost_utils

            x = multihost_utils.process_allgather(x, tiled=True)
        x = np.asarray(x)
        return x if num_replicas is None else x[:num_replicas]
    return jax.tree.map(one, tree)


def shard_map(fn, mesh: Mesh | None, in_specs, out_specs):
    """``jax.shard_map`` over the replica axis (``fn`` itself without a mesh)."""
    if mesh is None:
        return fn
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
