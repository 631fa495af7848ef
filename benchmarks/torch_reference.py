"""The PyTorch reference: the same U-Net and training loop in plain PyTorch, one run per process.

This is how the source studies ran their grids: one script per grid point. The model is the
one of ``benchmarks/cmr96_size.py`` and the study base (``jaxseg.configs.study``): U-Net
base 16, depth 3, 3x3 convolutions with bias -> ReLU -> batch norm (twice per block), 2x2 max
pooling, 2x2 stride-2 transposed convolutions, a 1x1 head, He-normal init; 483,204
parameters, as jaxseg's. Loss CE + soft Dice (mean over foreground classes, smooth 1), Adam
with coupled L2 on kernels, batch 16, random horizontal and vertical flips, 96x96 cmr96
images. Nothing here imports jax or jaxseg (``torch`` comes with the ``bench`` extra).

Modes:
  --mode=step    median time of one training step (after warm-up), as JSON.
  --mode=train   train ``--epochs`` epochs on cmr96 train, evaluate the mean foreground Dice
                 on cmr96 val after every epoch; prints the best Dice and the wall time as JSON.

Commands:
  python benchmarks/torch_reference.py --mode=step
  python benchmarks/torch_reference.py --mode=train --epochs=15 --lr=1e-3 --weight_decay=1e-4
The comparison with jaxseg: ``python benchmarks/compare_torch.py`` (docs/benchmarks.md).
"""

import glob
import json
import os
import re
import statistics
import time

import numpy as np
import torch
from absl import app, flags
from PIL import Image
from torch import nn

flags.DEFINE_enum("mode", "step", ["step", "train"], "What to measure.")
flags.DEFINE_string("data", os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                         "data", "cmr96"), "The cmr96 folder.")
flags.DEFINE_integer("epochs", 15, "train: epochs.")
flags.DEFINE_float("lr", 1e-3, "train: Adam learning rate.")
flags.DEFINE_float("weight_decay", 0.0, "train: L2 on conv kernels (coupled, as jaxseg's).")
flags.DEFINE_integer("batch_size", 16, "Batch size.")
flags.DEFINE_integer("steps", 10, "step: timed steps (the median is reported).")
flags.DEFINE_integer("seed", 0, "Seed of init, batch order and flips.")
flags.DEFINE_integer("threads", 0, "torch threads (0: every core).")
flags.DEFINE_string("device", "cpu", "torch device: cpu or cuda.")
flags.DEFINE_bool("channels_last", False, "Model and images in torch.channels_last (NHWC) "
                  "memory format: oneDNN's NHWC convolution kernels on CPU.")
flags.DEFINE_bool("synthetic", False, "step: random images and labels of cmr96's shape "
                  "instead of reading the data (a machine without the data).")

FLAGS = flags.FLAGS


class Block(nn.Sequential):
    """Two (conv 3x3 -> ReLU -> batch norm) layers."""

    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(cout))


class UNet(nn.Module):
    """jaxseg's default U-Net (depth 3, base 16, transposed-conv decoder)."""

    def __init__(self, num_classes=4, depth=3, base=16):
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(Block(cin, c) for cin, c in
                                  zip([1] + widths[:-2], widths[:-1], strict=True))
        self.mid = Block(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(depth)))
        self.dec = nn.ModuleList(Block(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(base, num_classes, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.mid(x)
        for up, block in zip(self.up, self.dec, strict=True):
            x = block(torch.cat([up(x), skips.pop()], 1))
        return self.head(x)


def loss_fn(logits, labels):
    """CE + soft Dice over the foreground classes (smooth 1), as jaxseg's ``ce`` + ``dice``."""
    ce = nn.functional.cross_entropy(logits, labels)
    probs = logits.softmax(1)
    onehot = nn.functional.one_hot(labels, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum((0, 2, 3))
    dice = (2 * inter + 1) / (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
    return ce + 1 - dice[1:].mean()


def _natural(p):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", os.path.basename(p))]


def load_split(split):
    """Images (N, 1, 96, 96) float in [0, 1] and labels (N, 96, 96) of a cmr96 split."""
    paths = sorted(glob.glob(os.path.join(FLAGS.data, split, "image", "*.png")), key=_natural)
    images = np.stack([np.asarray(Image.open(p), np.float32) / 255.0 for p in paths])
    masks = np.stack([np.asarray(Image.open(p.replace("/image/", "/mask/")
                                            .replace(".png", "_mask.png"))) for p in paths])
    return torch.from_numpy(images[:, None]), torch.from_numpy(masks.astype(np.int64))


# jaxseg's optimizers (jaxseg/optim.py, defaults of jaxseg.configs.default) in torch: SGD
# momentum 0.9, RMSProp decay 0.9 without momentum, Adagrad's accumulator from 0.1 (eps 1e-7),
# Adadelta rho 0.9 (eps 1e-6).
OPTIMIZERS = {
    "adam": lambda groups, lr: torch.optim.Adam(groups, lr=lr, eps=1e-8),
    "sgd": lambda groups, lr: torch.optim.SGD(groups, lr=lr, momentum=0.9),
    "rmsprop": lambda groups, lr: torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=1e-8),
    "adagrad": lambda groups, lr: torch.optim.Adagrad(groups, lr=lr, eps=1e-7,
                                                      initial_accumulator_value=0.1),
    "adamax": lambda groups, lr: torch.optim.Adamax(groups, lr=lr, eps=1e-8),
    "adadelta": lambda groups, lr: torch.optim.Adadelta(groups, lr=lr, rho=0.9, eps=1e-6),
}


def make_optimizer(model, lr, weight_decay, name="adam"):
    """Optimizer ``name``; L2 on conv kernels only (coupled), like jaxseg's ``weight_decay``."""
    kernels = [p for p in model.parameters() if p.ndim >= 2]
    others = [p for p in model.parameters() if p.ndim < 2]
    return OPTIMIZERS[name]([{"params": kernels, "weight_decay": weight_decay},
                             {"params": others, "weight_decay": 0.0}], lr)


def _flip(x, y, dim, gen):
    """Flips each sample along ``dim`` with probability 1/2 (as jaxseg's per-image flips)."""
    m = torch.rand(len(x), generator=gen, device=gen.device) < 0.5
    return (torch.where(m[:, None, None, None], x.flip(dim), x),
            torch.where(m[:, None, None], y.flip(dim), y))


def train_step(model, opt, x, y, gen):
    """One step with random per-image flips; returns the loss."""
    x, y = _flip(x, y, -1, gen)
    x, y = _flip(x, y, -2, gen)
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def train_epoch(model, opt, images, labels, gen, batch_size):
    """One epoch: full batches, the last one wrapping around to the first images (as jaxseg)."""
    order = torch.randperm(len(images), generator=gen, device=gen.device)
    steps = -(-len(images) // batch_size)
    order = order[torch.arange(steps * batch_size) % len(images)].reshape(steps, batch_size)
    for idx in order:
        train_step(model, opt, images[idx], labels[idx], gen)


@torch.no_grad()
def val_loss(model, images, labels):
    """The loss over the split (mean over batches of 16, weighted by their size)."""
    model.eval()
    total = sum(loss_fn(model(images[i:i + 16]), labels[i:i + 16]).item() * len(images[i:i + 16])
                for i in range(0, len(images), 16))
    model.train()
    return total / len(images)


@torch.no_grad()
def dice(model, images, labels, num_classes=4):
    """Mean foreground Dice over the split (global counts, as jaxseg's)."""
    model.eval()
    pred = torch.cat([model(images[i:i + 16]).argmax(1) for i in range(0, len(images), 16)])
    model.train()
    scores = []
    for c in range(1, num_classes):
        tp = ((pred == c) & (labels == c)).sum().item()
        denom = (pred == c).sum().item() + (labels == c).sum().item()
        scores.append(2 * tp / denom if denom else float("nan"))
    return float(np.nanmean(scores))


def main(argv):
    del argv
    t_start = time.time()
    torch.set_num_threads(FLAGS.threads or os.cpu_count())
    torch.manual_seed(FLAGS.seed)
    gen = torch.Generator().manual_seed(FLAGS.seed)
    device = torch.device(FLAGS.device)
    model = UNet().to(device)
    # The memory format is set before the optimizer sees the parameters, as PyTorch's
    # channels_last tutorial does; the images follow it below.
    layout = torch.channels_last if FLAGS.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    opt = make_optimizer(model, FLAGS.lr, FLAGS.weight_decay)
    B = FLAGS.batch_size
    if FLAGS.synthetic:
        images = torch.rand(B, 1, 96, 96, generator=gen)
        labels = torch.randint(0, 4, (B, 96, 96), generator=gen)
    else:
        images, labels = load_split("train")
    images, labels = images.to(device, memory_format=layout), labels.to(device)
    gen = torch.Generator(device).manual_seed(FLAGS.seed)  # the flips' draws, on the device
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "params": sum(p.numel() for p in model.parameters()), "device": str(device),
            "channels_last": FLAGS.channels_last}
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    if FLAGS.mode == "step":
        x, y = images[:B], labels[:B]
        for _ in range(3):
            train_step(model, opt, x, y, gen)
        times = []
        for _ in range(FLAGS.steps):
            t0 = time.perf_counter()
            train_step(model, opt, x, y, gen)  # .item() of the loss waits for the device
            times.append(time.perf_counter() - t0)
        print(json.dumps({**info, "step_s": statistics.median(times), "steps": FLAGS.steps}))
        return
    val_images, val_labels = load_split("val")
    val_images, val_labels = val_images.to(device, memory_format=layout), val_labels.to(device)
    best, best_epoch = -1.0, 0
    for epoch in range(FLAGS.epochs):
        train_epoch(model, opt, images, labels, gen, B)
        d = dice(model, val_images, val_labels)
        if d > best:
            best, best_epoch = d, epoch + 1
    print(json.dumps({**info, "best_dice": best, "best_epoch": best_epoch,
                      "epochs": FLAGS.epochs, "lr": FLAGS.lr,
                      "weight_decay": FLAGS.weight_decay, "wall_s": time.time() - t_start}))


if __name__ == "__main__":
    app.run(main)
