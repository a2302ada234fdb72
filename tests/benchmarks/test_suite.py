"""The benchmark suite runs end to end in its smoke mode and fills every row (numbers are not asserted: timings
belong to `make bench`, never to tests)."""

from __future__ import annotations

import pytest

from benchmarks.__main__ import main


@pytest.mark.slow
def test_smoke_run_fills_the_table(workdir, capsys) -> None:  # noqa: ANN001
    rows = main(["--smoke"])
    out = capsys.readouterr().out
    names = [row["benchmark"] for row in rows]
    # smoke: 1 model (the MLP; the CNN takes the same path) x (wall, CPU) x (bare Lightning, trainkit fit), each
    # against the hand loop
    assert sum(name.startswith("trainkit fit vs hand loop") for name in names) == 2
    assert sum(name.startswith("bare Lightning vs hand loop") for name in names) == 2
    assert sum(name.startswith("trainkit fit vs bare Lightning") for name in names) == 2
    assert names.count("start-up, trainkit fit (1 step, test_resnet, 16 px)") == 1  # smoke: the fit, whose flags age
    assert sum(name.startswith("int8 export") for name in names) == 1  # smoke: the digits MLP only
    assert sum(name.startswith("input pipeline") for name in names) == 2  # folder vs shards, CPU vs GPU decode
    assert any("CUDA" in name or "setting" in row for name, row in zip(names, rows, strict=True))
    for row in rows:
        if " vs hand loop" in row["benchmark"]:
            assert float(row["ratio"]) > 0
    assert "SMOKE" in out and "hand loop" in out


def test_unknown_section_is_rejected(capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
    assert "unknown section 'nope'" in capsys.readouterr().err
