"""The training engine: R replicas of one config in one compiled program.

* :mod:`~jaxseg.engine.steps`: the pure one-replica functions (``Static``, ``init_replica``,
  ``epoch_plan``, ``train_step``, ``eval_step``).
* :mod:`~jaxseg.engine.replicas`: the replica strategies that lift them to a stack of R
  (``vmap``, ``unroll``, ``map``, ``sequential``) and the per-backend compiler options.
* :mod:`~jaxseg.engine.devices`: the replica axis over several devices (mesh, padding).
* :mod:`~jaxseg.engine.cohort`: the compiled cohort and ``build_cohort``, its one recipe.
* :mod:`~jaxseg.engine.evaluate`: validation metrics of every replica.
* :mod:`~jaxseg.engine.tracker`: each replica's status, best epoch, early stopping and
  plateau feed (the host-side rules), saved with every checkpoint.

:func:`jaxseg.train.train_and_evaluate` wires them to a workdir.
"""
