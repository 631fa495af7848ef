"""train.strategy=auto: the decision rule on injected timings, its time budget and its
cache (the real measurement runs in tests/test_gpu_suite.py's tiny suite)."""

import pytest

from jaxseg import configs, validation
from jaxseg.engine import autotune
from jaxseg.errors import JaxsegError


def auto_config(epochs=100, share=0.05):
    c = configs.default()
    c.train.epochs, c.train.autotune_share = epochs, share
    return c


def fake(step_s: dict, compile_s=1.0):
    """A measure() that returns fixed timings and records what it was asked."""
    asked = []

    def measure(label):
        asked.append(label)
        return compile_s, [step_s[label]] * 3
    measure.asked = asked
    return measure


def test_candidates_and_the_rule():
    assert autotune.candidates(8, "cpu") == ["sequential", "vmap", "chunked:2", "chunked:4"]
    assert autotune.candidates(2, "gpu") == ["vmap", "sequential", "unroll"]
    order = ["sequential", "vmap", "chunked:2"]
    assert autotune.pick({"sequential": 1.0, "vmap": 2.0, "chunked:2": 0.5}, order) == "chunked:2"
    # Within 3% of the fastest, the earlier candidate stays (it compiles once whatever R).
    assert autotune.pick({"sequential": 1.02, "vmap": 1.0}, order) == "sequential"
    assert autotune.pick({"sequential": 1.04, "vmap": 1.0}, order) == "vmap"


def test_choice_measures_within_its_budget_and_is_cached(tmp_path):
    steps = {"sequential": 1.0, "vmap": 2.0, "chunked:2": 0.9, "chunked:4": 0.5}
    cache = str(tmp_path / "strategies.json")
    # 100 epochs x 10 steps x 1 s = 1000 s of training: 50 s to decide, every candidate fits
    # (each costs ~1 s of compile and a few steps).
    m = fake(steps)
    got = autotune.choose(auto_config(), None, 8, 10, measure=m, cache_file=cache)
    assert m.asked == ["sequential", "vmap", "chunked:2", "chunked:4"]
    assert (got.strategy, got.chunk, got.source) == ("chunked", 4, "measured")
    assert got.timings["vmap"] == {"step_s": 2.0, "compile_s": 1.0}
    again = autotune.choose(auto_config(), None, 8, 10, measure=fake(steps), cache_file=cache)
    assert (again.label, again.source) == ("chunked:4", "cached")
    # Another R is another decision; a short cohort affords only the default's timing.
    m = fake(steps, compile_s=20.0)
    short = autotune.choose(auto_config(epochs=5), None, 4, 10, measure=m, cache_file=cache)
    assert m.asked == ["sequential"] and (short.label, short.source) == ("sequential", "default")
    # The time spent is the timings' own account when the clock says less (injected
    # timings take no time): 50 s budget; sequential costs 10 s of compile + 4 steps of 1 s;
    # vmap is predicted at 1.5 x 10 + 11 steps = 26 s (14 + 26 <= 50: timed, 21 s); one
    # more would end at 35 + 26 > 50 s.
    m = fake(steps, compile_s=10.0)
    mid = autotune.choose(auto_config(), None, 8, 10, measure=m, use_cache=False)
    assert m.asked == ["sequential", "vmap"] and mid.label == "sequential"
    # Forced strategies and single replicas are not measured.
    c = auto_config()
    c.train.strategy, c.train.chunk = "chunked", 2
    assert autotune.choose(c, None, 8, 10, measure=fake(steps)).label == "chunked:2"
    assert autotune.choose(auto_config(), None, 1, 10, measure=fake(steps)).source == "default"


def test_impossible_budget_is_refused_naming_the_field():
    c = auto_config(share=1.5)
    with pytest.raises(JaxsegError, match=r"train.autotune_share=1.5 must be within \[0, 1\]"):
        validation.validate(c)
    c = auto_config()
    c.train.strategy, c.train.chunk = "chunked", 0
    with pytest.raises(JaxsegError, match="train.chunk=0"):
        validation.validate(c)
