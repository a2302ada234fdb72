"""The one seeded split every DataModule uses: same seed, same parts; sizes rounded, never silently empty."""

from __future__ import annotations

import pytest

from trainkit.data._common import seeded_split
from trainkit.errors import ConfigError


def test_the_split_is_seeded_disjoint_and_rounded() -> None:
    val, test, train = seeded_split(10, (0.25, 0.04), seed=3)
    assert (len(val), len(test), len(train)) == (2, 1, 7)  # round(2.5) is 2; 0.4 of an item still holds one out
    assert sorted(val + test + train) == list(range(10))
    assert seeded_split(10, (0.25, 0.04), seed=3) == [val, test, train]
    assert seeded_split(10, (0.25, 0.04), seed=4) != [val, test, train]
    assert seeded_split(10, (0.0,), seed=3)[0] == []


def test_a_split_that_leaves_nothing_to_train_on_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match="3 rows are too few to hold out 2 and 1 and still train on any; fix it"):
        seeded_split(3, (0.5, 0.1), seed=0, what="rows", fix="fix it")
