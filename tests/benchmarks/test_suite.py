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
    assert sum(name.startswith("fit overhead") for name in names) == 4  # 2 models x (wall, CPU)
    assert sum(name.startswith("start-up") for name in names) == 3
    assert sum(name.startswith("int8 export") for name in names) == 1  # smoke: the digits MLP only
    assert any("CUDA" in name or "setting" in row for name, row in zip(names, rows, strict=True))
    for row in rows:
        if row["benchmark"].startswith("fit overhead"):
            assert float(row["ratio"]) > 0
    assert "SMOKE" in out and "hand loop" in out


def test_unknown_section_is_rejected(capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit):
        main(["--only", "nope"])
    assert "unknown section 'nope'" in capsys.readouterr().err
