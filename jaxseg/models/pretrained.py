"""Backbone weights from a file: torchvision's ResNet-18 converted once, loaded at init.

``jaxseg convert --input=resnet18-f37072fd.pth --output=resnet18.npz`` turns a torchvision
ResNet-18 state dict (``.pth``, read with PyTorch; or ``.safetensors``, read without it) into
an ``.npz`` of this project's parameter paths (``params/backbone/layer1_0/conv1/kernel``,
``batch_stats/backbone/bn1/mean``...): convolution kernels from PyTorch's ``(O, I, kh, kw)``
to Flax's ``(kh, kw, I, O)``, batch norm's weight/bias/running statistics to
scale/bias/mean/var; the classifier (``fc``) is left out. Nothing is downloaded: the user
brings the file (torchvision's ImageNet weights are
https://download.pytorch.org/models/resnet18-f37072fd.pth).

``model.pretrained=PATH.npz`` loads it into DeepLabV3's backbone when a cohort's replicas are
initialised (every replica starts from the same backbone; the seed draws the ASPP head). The
file must match the backbone exactly, parameter for parameter; the one allowed difference is
the first convolution's input channels: ImageNet weights take RGB, MR slices are one
channel, and an RGB kernel summed over its colour axis computes on a grey image what the
RGB network computes on that image copied into three channels (the usual way to reuse
ImageNet weights on grey images). ImageNet's intensity normalisation is not applied: the
slices keep ``data.scaling``'s range, which the first batch norm re-centres.
"""

import os
import re

import jax
import numpy as np
from absl import logging

from jaxseg.errors import JaxsegError

# torchvision's names -> this project's module names (jaxseg/models/resnet.py).
_RENAMES = ((re.compile(r"^layer(\d)\.(\d+)\."), r"layer\1_\2."),
            (re.compile(r"\.downsample\.0\."), ".downsample_conv."),
            (re.compile(r"\.downsample\.1\."), ".downsample_bn."))
_BN = {"weight": ("params", "scale"), "bias": ("params", "bias"),
       "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def convert_torchvision(state: dict) -> dict[str, np.ndarray]:
    """Converts a torchvision ResNet-18 state dict to ``{"collection/backbone/...": array}``.

    Args:
      state: parameter name -> array (numpy or anything ``np.asarray`` takes).

    Returns:
      The flat ``.npz`` content :func:`load_into` reads.

    Raises:
      JaxsegError: for a name that is not a ResNet parameter.
    """
    out = {}
    for key, value in state.items():
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue  # the ImageNet classifier; a counter batch norm does not need
        name = key
        for pattern, repl in _RENAMES:
            name = pattern.sub(repl, name)
        *modules, leaf = name.split(".")
        array = np.asarray(value, np.float32)
        if leaf == "weight" and array.ndim == 4:
            out["/".join(["params", "backbone", *modules, "kernel"])] = array.transpose(2, 3, 1, 0)
        elif leaf in _BN and modules and re.fullmatch(r"(bn\d|downsample_bn)", modules[-1]):
            collection, flax_name = _BN[leaf]
            out["/".join([collection, "backbone", *modules, flax_name])] = array
        else:
            raise JaxsegError(f"{key!r} (shape {array.shape}) is not a parameter of torchvision's "
                              "ResNet-18; convert takes a resnet18 state dict")
    return out


def convert_file(source: str, output: str) -> int:
    """Reads a torchvision ResNet-18 ``.pth`` or ``.safetensors`` file and writes the ``.npz``.

    Args:
      source: the state dict file (``.pth`` needs PyTorch; a checkpoint holding the state
        dict under ``state_dict`` or ``model`` is unwrapped).
      output: the ``.npz`` to write.

    Returns:
      The number of arrays written.
    """
    if not os.path.isfile(source):
        raise JaxsegError(f"convert --input={source}: no such file")
    if source.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ImportError as e:
            raise JaxsegError(f"reading {source} needs safetensors (pip install "
                              "'jaxseg[convert]')") from e
        state = load_file(source)
    else:
        try:
            import torch
        except ImportError as e:
            raise JaxsegError(f"reading {source} needs PyTorch (pip install torch), or give the "
                              "weights as .safetensors") from e
        state = torch.load(source, map_location="cpu", weights_only=True)
        for wrapper in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                state = state[wrapper]
        state = {k: v.numpy() for k, v in state.items()}
    arrays = convert_torchvision(state)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    np.savez(output, **arrays)
    return len(arrays)


def load(path: str) -> dict[str, np.ndarray]:
    """The arrays of a converted weights file (``jaxseg convert``'s ``.npz``)."""
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise JaxsegError(f"model.pretrained={path}: no such file (jaxseg convert writes one "
                          "from torchvision's ResNet-18 weights)")
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise JaxsegError(f"model.pretrained={path} is not an .npz of arrays ({e}); jaxseg "
                          "convert writes one") from e


def load_into(variables: dict, weights: dict[str, np.ndarray], path: str,
              replica_axis: bool = True) -> dict:
    """Puts the file's backbone weights into (stacked) model variables.

    Args:
      variables: ``{"params": ..., "batch_stats": ...}``, each leaf with a leading
        replica axis when ``replica_axis``.
      weights: :func:`load`'s arrays.
      path: the file, for messages.
      replica_axis: whether the leaves are stacked replicas (the weights are broadcast).

    Returns:
      The variables with every backbone leaf replaced, placed as the leaves were.

    Raises:
      JaxsegError: when the file and the backbone differ in a name or a shape.
    """
    sub = {c: variables[c] for c in ("params", "batch_stats") if c in variables}
    backbone = {_key(p) for p, _ in jax.tree_util.tree_flatten_with_path(sub)[0]
                if _key(p).split("/")[1:2] == ["backbone"]}
    if not backbone:
        raise JaxsegError(f"model.pretrained={path}: this model has no backbone to load "
                          "(model.name=deeplabv3 has one)")
    missing, extra = sorted(backbone - set(weights)), sorted(set(weights) - backbone)
    if missing or extra:
        raise JaxsegError(f"model.pretrained={path} does not match the ResNet-18 backbone: "
                          + (f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''} "
                             if missing else "")
                          + (f"unexpected {extra[:3]}{' ...' if len(extra) > 3 else ''}"
                             if extra else ""))

    def replace(p, leaf):
        key = _key(p)
        if key not in backbone:
            return leaf
        shape = tuple(leaf.shape[1:] if replica_axis else leaf.shape)
        w = weights[key]
        if key.endswith("backbone/conv1/kernel") and w.shape[2] != shape[2] and shape[2] == 1:
            logging.info("%s: the first convolution's %d input channels summed into the "
                         "model's 1 (a grey image as RGB)", path, w.shape[2])
            w = w.sum(axis=2, keepdims=True)
        if w.shape != shape:
            raise JaxsegError(f"model.pretrained={path}: {key} has shape {w.shape}, the model's "
                              f"is {shape}")
        w = np.broadcast_to(w, leaf.shape) if replica_axis else w
        return jax.device_put(w.astype(leaf.dtype), getattr(leaf, "sharding", None))

    return {**variables, **jax.tree_util.tree_map_with_path(replace, sub)}


def _key(path) -> str:
    """``params/backbone/conv1/kernel`` for a pytree path."""
    return "/".join(str(getattr(k, "key", k)) for k in path)
