"""`trainkit predict --ckpt_path X --source PATH`: a model trained on named classes predicts new, unlabelled inputs,
one row per input with its path (or row id) and class name; unreadable inputs are named, then skipped or fatal."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

COLORS = {"circle": "red", "square": "green", "triangle": "blue"}  # a colour per class: learnt in a few steps


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _image_config(workdir: Path) -> Path:
    for name, color in COLORS.items():
        (workdir / "shapes" / name).mkdir(parents=True)
        for i in range(10):
            Image.new("RGB", (18 + i, 18), color).save(workdir / "shapes" / name / f"{i}.png")
    config = workdir / "shapes.yaml"
    config.write_text(f"""\
experiment: shapes
test_after_fit: true
trainer: {{max_epochs: 3, enable_progress_bar: false, enable_model_summary: false, log_every_n_steps: 1}}
model:
  class_path: ClassificationModule
  init_args: {{backbone: test_resnet, num_classes: 3, optimizer: {{lr: 0.01}}}}
data:
  class_path: ImageFolderDataModule
  init_args: {{root: {workdir / "shapes"}, image_size: 16, batch_size: 6, num_workers: 0, val_fraction: 0.2,
              test_fraction: 0.3}}
""")
    return config


@pytest.mark.slow
def test_an_image_folder_model_names_classes_and_predicts_new_files(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture
) -> None:
    assert trainkit("fit", "--config", _image_config(workdir)) == 0
    assert "3 classes (train/val/test): circle (5/2/3), square (5/2/3), triangle (5/2/3)" in capsys.readouterr().out
    run = workdir / "runs" / "shapes" / "version_0"
    report = run / "report"
    matrix_rows = list(csv.reader((report / "confusion_matrix.csv").open()))
    assert matrix_rows[0][1:] == list(COLORS) and [row[0] for row in matrix_rows[1:]] == list(COLORS)
    assert [r["class"] for r in _rows(report / "per_class.csv")] == list(COLORS)

    # predict on the test split: its (target, pred) counts are the confusion matrix's
    best = run / "checkpoints" / "best.ckpt"
    assert trainkit("predict", "--ckpt_path", best) == 0
    rows = _rows(run / "predict" / "version_0" / "predictions.csv")
    predicted = Counter((COLORS_INDEX[int(r["target"])], r["pred_name"]) for r in rows)
    matrix = {(row[0], name): int(n) for row in matrix_rows[1:] for name, n in zip(matrix_rows[0][1:], row[1:],
                                                                                    strict=True) if int(n)}
    assert dict(predicted) == matrix

    new = workdir / "new"
    (new / "more").mkdir(parents=True)
    expected = {new / "a.png": "circle", new / "b.png": "square", new / "more" / "c.jpg": "triangle"}
    for path, name in expected.items():
        Image.new("RGB", (30, 20), COLORS[name]).save(path)
    (new / "broken.png").write_bytes(b"not an image")
    capsys.readouterr()
    assert trainkit("predict", "--ckpt_path", best, "--source", new) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot read image '{new / 'broken.png'}'" in err[0] and "skip_unreadable" in err[0]

    assert trainkit("predict", "--ckpt_path", best, "--source", new, "--predictions.skip_unreadable", "true",
                    "--predictions.top_k", "2") == 0
    assert f"skipped image '{new / 'broken.png'}'" in capsys.readouterr().out
    rows = _rows(sorted((run / "predict").glob("version_*/predictions.csv"))[-1])
    assert {Path(r["source"]): r["pred_name"] for r in rows} == expected
    assert all(float(r["prob"]) >= float(r["prob_2"]) and r["pred_name_2"] != r["pred_name"] for r in rows)


COLORS_INDEX = list(COLORS)


def _csv_config(workdir: Path, rows: int = 90) -> Path:
    generator = __import__("random").Random(0)
    with (workdir / "table.csv").open("w") as file:
        file.write("x1,x2,size\n")
        for i in range(rows):
            x1 = (i % 3) * 4.0 + generator.uniform(-1, 1)  # size is read off x1; x2 is noise
            file.write(f"{x1:.3f},{generator.uniform(-5, 5):.3f},{['small', 'medium', 'large'][i % 3]}\n")
    config = workdir / "table.yaml"
    config.write_text("""\
experiment: table
test_after_fit: true
trainer: {max_epochs: 12, enable_progress_bar: false, enable_model_summary: false, log_every_n_steps: 1}
model:
  class_path: ClassificationModule
  init_args: {backbone: mlp, in_features: 2, hidden_sizes: [16], num_classes: 3, optimizer: {lr: 0.03}}
data:
  class_path: CSVDataModule
  init_args: {path: table.csv, target_columns: [size], task: classification, batch_size: 16}
""")
    return config


def test_a_csv_classifier_predicts_rows_without_the_target(workdir: Path, trainkit,
                                                            capsys: pytest.CaptureFixture) -> None:
    assert trainkit("fit", "--config", _csv_config(workdir)) == 0
    # class names are the sorted label values; the split is stratified: 15% of each class's 30 rows held out twice
    out, err = capsys.readouterr()
    assert "3 classes (train/val/test): large (22/4/4), medium (22/4/4), small (22/4/4)" in out
    assert "report not written" not in err, "the report of table rows (not images) is written whole"
    report = workdir / "runs" / "table" / "version_0" / "report"
    assert [r["class"] for r in _rows(report / "per_class.csv")] == ["large", "medium", "small"]
    (workdir / "table.csv").unlink()  # the checkpoint alone (with the feature statistics) predicts new rows
    (workdir / "new.csv").write_text("x2,x1\n0.5,8.2\n-2,0.1\n1,oops\n3,3.9\n")
    best = workdir / "runs" / "table" / "version_0" / "checkpoints" / "best.ckpt"
    assert trainkit("predict", "--ckpt_path", best, "--source", "new.csv", "--predictions.skip_unreadable",
                    "true") == 0
    assert "skipped row 3 of 'new.csv': column 'x1': 'oops' is not a number" in capsys.readouterr().out
    rows = _rows(workdir / "runs" / "table" / "version_0" / "predict" / "version_0" / "predictions.csv")
    assert [(r["source"], r["pred_name"]) for r in rows] == [("1", "large"), ("2", "small"), ("4", "medium")]


def test_jsonl_prompts_without_output_are_answered(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    from tests.tasks.test_language import SFT, TINY_CLI

    assert trainkit("fit", "--config", SFT, *TINY_CLI, "--test_after_fit", "false") == 0
    prompts = workdir / "prompts.jsonl"
    prompts.write_text('{"instruction": "add", "input": "12+30"}\n{"instruction": "reverse", "input": "cat"}\n'
                       '{"instruction": "' + "x" * 40 + '"}\n')
    best = workdir / "runs" / "lm_sft" / "version_0" / "checkpoints" / "best.ckpt"
    assert trainkit("predict", "--ckpt_path", best, "--source", prompts, "--predictions.skip_unreadable", "true") == 0
    assert f"skipped record 3 of '{prompts}': its prompt leaves no room" in capsys.readouterr().out
    out = workdir / "runs" / "lm_sft" / "version_0" / "predict" / "version_0" / "predictions.jsonl"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["source"], r["prompt"], r["reference"]) for r in rows] == [("1", "add 12+30 =", ""),
                                                                          ("2", "reverse cat =", "")]
    assert all(isinstance(r["generated"], str) for r in rows)
