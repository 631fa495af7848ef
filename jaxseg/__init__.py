"""jaxseg: hyperparameter studies of U-Net segmentation of cardiac MRI in JAX/Flax.

Numeric sweep axes are stacked as model replicas and trained together in one
jit-compiled program; see README.md and docs/design.md for the data flow.
"""

__version__ = "0.1.0"
