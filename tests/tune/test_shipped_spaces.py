"""Every shipped search space (configs/tune/NAME.yaml) reads, and its keys exist in the experiment it tunes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from trainkit.cli import parse_only
from trainkit.tune.space import SearchSpace

TUNED = {"digits.yaml": REPO / "configs/classification/digits.yaml"}


@pytest.mark.parametrize("search", sorted((REPO / "configs/tune").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_search_space_fits_its_experiment(search: Path) -> None:
    assert search.name in TUNED, f"say which experiment {search.name} tunes in TUNED"
    space = SearchSpace.from_file(search)
    config = parse_only(["--config", str(TUNED[search.name])])
    space.check_keys(config)
    assert space.values_in(config) is not None, "the experiment's own values lie inside the space (trial 0)"
