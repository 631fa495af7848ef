"""Which configurations can be told apart from the best one: paired tests, Holm-corrected.

For every configuration against the best (the first of the sorted configuration table):

* **over seeds/folds**: a paired t-test (``scipy.stats.ttest_rel``) of the sort metric
  over the runs the two configurations share a seed and fold with (at least 2 pairs;
  with 2-3 seeds a rank test cannot reach p < 0.05 at all: Wilcoxon's smallest two-sided
  p over 3 pairs is 0.25);
* **over validation images**: a Wilcoxon signed-rank test (``scipy.stats.wilcoxon``,
  two-sided, zero differences dropped as in Wilcoxon's original rule) of each image's (or
  volume's) mean foreground Dice, averaged over the configuration's seeds, over the images
  both configurations have a value for. Its effect size is printed beside it: the mean
  per-image difference (this configuration minus the best) and the matched-pairs
  rank-biserial correlation ``r = (W+ - W-) / (W+ + W-)`` (Kerby 2014; -1: worse on every
  image).

Each family of p-values is corrected for the number of configurations compared with Holm's
step-down rule. A configuration is *not distinguishable from the best* at ``ALPHA`` when no
corrected p-value it has is below ``ALPHA``.
"""

import math

import numpy as np
from scipy import stats

from jaxseg.engine.evaluate import CASE_DICE

ALPHA = 0.05


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None and is not counted).

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    order = sorted(idx, key=lambda i: pvalues[i])
    out: list[float | None] = [None] * len(pvalues)
    running, m = 0.0, len(order)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


def paired_seeds(best: dict, other: dict) -> float | None:
    """The paired t-test's two-sided p over shared seeds/folds, or None (< 2 pairs).

    Args:
      best, other: ``{repeat key: metric value}`` of the two configurations' runs.
    """
    keys = [k for k in best if k in other and _finite(best[k]) and _finite(other[k])]
    if len(keys) < 2:
        return None
    a, b = np.array([best[k] for k in keys]), np.array([other[k] for k in keys])
    if np.all(a - b == 0):
        return 1.0
    if np.all(a - b == (a - b)[0]):  # a constant non-zero difference: no spread at all
        return 0.0
    return float(stats.ttest_rel(b, a).pvalue)


def per_case_mean(case_dicts: list[dict | None]) -> dict[str, float]:
    """Each case's Dice averaged over a configuration's runs (cases with no value left out)."""
    sums: dict[str, list[float]] = {}
    for cases in case_dicts:
        for k, v in (cases or {}).items():
            if v is not None and math.isfinite(v):
                sums.setdefault(k, []).append(v)
    return {k: float(np.mean(v)) for k, v in sums.items()}


def paired_images(best: dict[str, float], other: dict[str, float]) -> dict | None:
    """Wilcoxon signed-rank over shared cases: ``{"p", "delta", "r", "cases"}`` or None.

    Args:
      best, other: :func:`per_case_mean` of the two configurations.
    """
    keys = sorted(set(best) & set(other), key=lambda k: (len(k), k))
    if not keys:
        return None
    d = np.array([other[k] - best[k] for k in keys])
    nz = d[d != 0]
    if nz.size == 0:
        return {"p": 1.0, "delta": 0.0, "r": 0.0, "cases": len(keys)}
    ranks = stats.rankdata(np.abs(nz))
    w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    p = float(stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided").pvalue)
    return {"p": p, "delta": float(d.mean()), "r": float((w_plus - w_minus) / (w_plus + w_minus)),
            "cases": len(keys)}


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def against_best(groups: list[list[dict]], metric: str, repeat_key) -> list[dict]:
    """The paired comparisons of every configuration with the first (the best).

    Args:
      groups: each configuration's run rows, best configuration first (rows carry
        ``metric`` and ``case_dice``).
      metric: the row metric of the seed/fold test (the table's sort metric).
      repeat_key: a row's seed/fold identity (a hashable).

    Returns:
      One dict per configuration: ``p_seeds``/``p_images`` (Holm-corrected; None where the
      test has too few pairs), ``delta_image`` and ``r_image`` (effect size over images),
      and ``vs_best``: ``best``, ``tied`` (not distinguishable at ``ALPHA``) or ``worse``
      (or ``better``: a configuration ranked below the best that the per-image test finds
      ahead, possible when the sort metric is not per-image Dice).
    """
    if not groups:
        return []
    by_key = [{repeat_key(r): r.get(metric) for r in g} for g in groups]
    cases = [per_case_mean([r.get(CASE_DICE) for r in g]) for g in groups]
    seeds, images = [None], [None]
    for i in range(1, len(groups)):
        seeds.append(paired_seeds(by_key[0], by_key[i]))
        images.append(paired_images(cases[0], cases[i]))
    p_seeds = holm(seeds)
    p_images = holm([None if x is None else x["p"] for x in images])
    out = [{"p_seeds": None, "p_images": None, "delta_image": None, "r_image": None,
            "vs_best": "best"}]
    for i in range(1, len(groups)):
        ps = [p for p in (p_seeds[i], p_images[i]) if p is not None]
        img = images[i] or {}
        verdict = "tied" if all(p >= ALPHA for p in ps) else (
            "better" if img.get("delta") is not None and img["delta"] > 0
            and p_images[i] is not None and p_images[i] < ALPHA else "worse")
        out.append({"p_seeds": p_seeds[i], "p_images": p_images[i],
                    "delta_image": img.get("delta"), "r_image": img.get("r"),
                    "vs_best": verdict if ps else None})
    return out
