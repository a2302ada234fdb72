"""The suite's xdist groups take effect: tests that share one costly run (tests/ddp_fits.py) or one SLURM cluster
rely on `--dist loadgroup` sending a group to one worker, and a pytest/xdist pairing that drops the group does so
silently (pytest 9.2 with xdist 3.8: the shared DDP run ran once per worker)."""

from __future__ import annotations

import pytest


@pytest.mark.xdist_group("groups_check")
def test_a_grouped_test_carries_its_group_to_the_scheduler(request: pytest.FixtureRequest) -> None:
    if getattr(request.config.option, "loadgroup", None) is not True:
        pytest.skip("runs under `pytest -n N --dist loadgroup` (make test)")
    assert request.node.nodeid.endswith("@groups_check"), (
        f"{request.node.nodeid}: xdist's loadgroup did not tag the test with its group; pin a pytest that keeps "
        "item._nodeid (pyproject.toml, dev extra)")
