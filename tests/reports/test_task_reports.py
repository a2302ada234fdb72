"""Task reports: each task family writes its report files on a tiny real run, and the numbers in them agree with
the run's own metrics and predictions."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_DIGITS
from tests.metrics_csv import last_values
from tests.tasks.test_metric_learning import TINY as TINY_METRIC
from tests.tasks.test_regression import TINY_DIABETES
from tests.tasks.test_segmentation import TINY_SHAPES
from trainkit.reports.classification import ClassificationReport

DISTILL = REPO / "configs" / "distillation" / "digits.yaml"

TEST_AFTER_FIT = ["--test_after_fit", "true"]  # the reports are written by the test after fit: on again


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 400_000


def test_classification_report_matches_the_predictions_and_distillation_compares_teacher_and_student(
    workdir: Path, trainkit
) -> None:
    assert trainkit("fit", *TINY_DIGITS, *TEST_AFTER_FIT) == 0
    run = workdir / "runs" / "digits" / "version_0"
    report = run / "report"
    for name in ("confusion_matrix.png", "most_confident_wrong.png"):
        assert _is_png(report / name), name
    # `trainkit predict` on the same checkpoint and split is an independent path to the same (target, pred) counts.
    assert trainkit("predict", *TINY_DIGITS, "--ckpt_path", "best", "--trainer.limit_predict_batches", "2") == 0
    predicted = Counter((int(r["target"]), int(r["pred"])) for r in _rows(run / "predict/version_0/predictions.csv"))
    with (report / "confusion_matrix.csv").open() as file:
        matrix = [[int(v) for v in row[1:]] for row in list(csv.reader(file))[1:]]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 128
    assert {(t, p): n for t, row in enumerate(matrix) for p, n in enumerate(row) if n} == dict(predicted)
    per_class = _rows(report / "per_class.csv")
    assert [int(r["support"]) for r in per_class] == [sum(row) for row in matrix]
    for index, row in enumerate(per_class):
        if sum(matrix[i][index] for i in range(10)):
            assert float(row["precision"]) == pytest.approx(matrix[index][index] / sum(m[index] for m in matrix),
                                                            abs=1e-5)

    teacher = run / "checkpoints" / "best.ckpt"
    distil = ["--config", DISTILL, *TINY_DIGITS[2:], "--model.init_args.teacher", teacher]
    assert trainkit("fit", *distil, *TEST_AFTER_FIT) == 0
    report = workdir / "runs" / "digits_distill" / "version_0" / "report"
    assert _is_png(report / "distillation.png") and _is_png(report / "confusion_matrix.png")
    rows = {r["model"]: r for r in _rows(report / "distillation.csv")}
    assert set(rows) == {"teacher", "student"}
    assert int(rows["teacher"]["parameters"]) > 0 and float(rows["student"]["ms_per_batch_of_64"]) > 0
    logged = last_values(report.parent / "metrics.csv")
    assert float(rows["student"]["test_acc"]) == pytest.approx(float(logged["test/acc"]), abs=1e-5)
    assert float(rows["teacher"]["test_acc"]) == pytest.approx(float(logged["test/teacher_acc"]), abs=1e-5)


def test_a_failing_report_is_one_line_and_the_test_still_succeeds(
    workdir: Path, trainkit, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(*args: object) -> list[Path]:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(ClassificationReport, "write", broken)
    assert trainkit("fit", *TINY_DIGITS, *TEST_AFTER_FIT) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "report not written" in line]
    assert lines == ["trainkit: report not written to runs/digits/version_0/report (ClassificationReport): "
                     "RuntimeError: disk on fire second line"]
    assert "test/acc" in last_values(workdir / "runs/digits/version_0/metrics.csv")


def test_segmentation_report(workdir: Path, trainkit) -> None:
    assert trainkit("fit", *TINY_SHAPES, *TEST_AFTER_FIT) == 0
    run = next((workdir / "runs").glob("*/version_0"))
    report = run / "report"
    assert _is_png(report / "overlays.png") and _is_png(report / "per_class_iou.png")
    logged = last_values(run / "metrics.csv")
    for row in _rows(report / "per_class.csv"):
        assert float(row["iou"]) == pytest.approx(float(logged[f"test/iou_{row['class']}"]), abs=1e-5)


def test_regression_report(workdir: Path, trainkit) -> None:
    assert trainkit("fit", *TINY_DIABETES, *TEST_AFTER_FIT) == 0
    run = workdir / "runs" / "diabetes" / "version_0"
    report = run / "report"
    assert _is_png(report / "predicted_vs_true.png") and _is_png(report / "residuals.png")
    (row,) = _rows(report / "per_target.csv")
    logged = last_values(run / "metrics.csv")
    assert float(row["r2"]) == pytest.approx(float(logged["test/r2"]), abs=1e-4)
    assert float(row["mae"]) == pytest.approx(float(logged["test/mae"]), rel=1e-4)


@pytest.mark.slow  # t-SNE and a kNN over the test embeddings: ~30 s on 2 cores
def test_metric_learning_report(workdir: Path, trainkit) -> None:
    assert trainkit("fit", *TINY_METRIC, *TEST_AFTER_FIT) == 0
    run = workdir / "runs" / "digits_metric" / "version_0"
    report = run / "report"
    assert _is_png(report / "embeddings_2d.png") and _is_png(report / "recall_at_k.png")
    recalls = [float(r["recall"]) for r in _rows(report / "recall_at_k.csv")]
    assert len(recalls) == 10 and recalls == sorted(recalls)
    logged = last_values(run / "metrics.csv")
    assert recalls[0] == pytest.approx(float(logged["test/recall_at_1"]), abs=1e-5)
    assert recalls[4] == pytest.approx(float(logged["test/recall_at_5"]), abs=1e-5)
