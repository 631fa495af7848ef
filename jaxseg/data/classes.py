"""Class selection and merging (``data.classes``): the task a model learns from a data set's masks.

``data.classes`` lists the foreground classes of the task, comma-separated; each is one of
the data's classes or several joined by ``+`` (merged into one), by name (as in
``data.class_names``, any case) or by index. Classes the list leaves out become
background. On the cardiac sets (bg, RV, MYO, LV):

* ``RV``: the right ventricle against everything else (a binary task; with
  ``model.head=sigmoid``, the loss study's RV-only setting);
* ``MYO+LV,RV``: the left ventricle as a whole (myocardium and cavity merged), then RV;
* ``LV``, ``MYO``: one structure each.

The masks are mapped when the data are prepared for training (:func:`jaxseg.data.datasets.
load`) and when ``predict`` reads true masks, so the model's classes, its metrics, the
tables and the reports all follow the new classes, named after what they merge (``bg``,
``RV``; ``bg``, ``MYO+LV``, ``RV``). The data's own classes are kept in
``data.source_num_classes`` / ``data.source_class_names`` (how the masks are read and
checked).
"""

import numpy as np

from jaxseg.errors import JaxsegError


def parse(spec: str, names) -> list[tuple[int, ...]]:
    """The foreground groups of a ``data.classes`` spec, as indices into the data's classes.

    Args:
      spec: ``"RV"``, ``"MYO+LV,RV"``, ``"1,2+3"``, ...
      names: the data's class names, background first.

    Returns:
      One tuple of source class indices per output foreground class, in the spec's order.

    Raises:
      JaxsegError: an unknown or repeated class, background listed, or an empty group.
    """
    names = list(names)
    lower = {n.lower(): i for i, n in enumerate(names)}
    groups, seen = [], {}
    for group in str(spec).split(","):
        members = []
        for item in group.split("+"):
            item = item.strip()
            if not item:
                raise JaxsegError(f"data.classes={spec!r} has an empty class (between commas "
                                  "or plus signs)")
            index = int(item) if item.isdigit() else lower.get(item.lower())
            if index is None or not 0 <= index < len(names):
                raise JaxsegError(f"data.classes={spec!r}: {item!r} is none of the data's "
                                  f"classes {names} (a name or an index 1..{len(names) - 1})")
            if index == 0:
                raise JaxsegError(f"data.classes={spec!r} lists the background ({item!r}); "
                                  "list the foreground classes only: the others become "
                                  "background")
            if index in seen:
                raise JaxsegError(f"data.classes={spec!r} lists {names[index]} twice")
            seen[index] = len(groups)
            members.append(index)
        groups.append(tuple(members))
    return groups


def group_names(groups: list[tuple[int, ...]], names) -> tuple[str, ...]:
    """The output class names: ``bg``, then each group's members joined by ``+``."""
    return ("bg",) + tuple("+".join(names[i] for i in g) for g in groups)


def lookup(data_cfg) -> np.ndarray | None:
    """The source -> output class table of a resolved ``data`` config (None: no mapping)."""
    if not data_cfg.classes:
        return None
    n = int(data_cfg.source_num_classes)
    lut = np.zeros(n, np.int32)
    for out, group in enumerate(parse(data_cfg.classes, data_cfg.source_class_names), 1):
        lut[list(group)] = out
    return lut


def source_count(data_cfg) -> int:
    """How many classes the data's masks hold (the masks are read and checked with it)."""
    return int(data_cfg.source_num_classes) if data_cfg.classes else int(data_cfg.num_classes)


def apply(labels: np.ndarray | None, data_cfg) -> np.ndarray | None:
    """The labels of the task (``data.classes``): unchanged without a mapping."""
    lut = lookup(data_cfg)
    if lut is None or labels is None:
        return labels
    return lut[labels].astype(labels.dtype)
