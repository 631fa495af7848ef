"""The cmr96-size model for benchmarks: U-Net base 16, depth 3, batch 16, 96x96, 4 classes.

Data: the built-in phantom at 96x96 (same shapes as cmr96, no download), 112 training images
(7 steps per epoch, as cmr96's 100 images at batch 16).

Command (the strategy table in docs/benchmarks.md):
  jaxseg bench --config=benchmarks/cmr96_size.py --replicas=1,2,4 --strategies=unroll,vmap,map
"""

from jaxseg import configs


def get_config():
    """The benchmark config."""
    c = configs.default()
    c.data.phantom.size = 96
    c.data.phantom.num_train = 112
    c.data.phantom.num_val = 16
    c.data.image_size = 96
    c.model.base_width = 16
    c.model.depth = 3
    c.augment.hflip = True
    c.augment.vflip = True
    c.train.batch_size = 16
    return c
