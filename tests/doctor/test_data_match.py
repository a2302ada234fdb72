"""Model/data mismatches stop `fit` (and are reported by `trainkit check`) before training: one line naming the
fix, a non-zero exit, and no run folder left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

MLP = ["--model.init_args.backbone", "mlp", "--model.init_args.in_features", "2", "--model.init_args.hidden_sizes",
       "[4]"]
CLASSIFIER = ["--model", "ClassificationModule", "--model.init_args.num_classes", "3"]
CSV = ["--data", "CSVDataModule", "--data.init_args.path", "table.csv", "--data.init_args.feature_columns", "[x1,x2]",
       "--data.init_args.target_columns"]
CASES = {
    "own network too narrow": (
        [*CLASSIFIER, "--model.init_args.backbone", "{class_path: torch.nn.Linear, init_args: {in_features: 2, "
         "out_features: 2}}", *CSV, "[label]", "--data.init_args.task", "classification"],
        "the network outputs (2, 2) for 2 samples but num_classes=3 (multiclass) needs (N, 3); make its last layer "
        "output 3"),
    "label outside the classes": (
        [*CLASSIFIER, *MLP, "--data", "tests.doctor.user_data.LabelledRows"],
        "label value 4 is outside [0, 3) for num_classes=3; set --model.init_args.num_classes 5"),
    "regression data under a classifier": (
        [*CLASSIFIER, *MLP, *CSV, "[size]"],
        "the data gives numeric targets (float, shape (8, 1)) but the model is a classifier; train a "
        "RegressionModule, or for a CSV of class labels set --data.init_args.task classification"),
    "class labels under a regressor": (
        ["--model", "RegressionModule", *MLP, *CSV, "[label]", "--data.init_args.task", "classification"],
        "the data gives class labels (integer targets, shape (8,)) but the model is a RegressionModule; train a "
        "ClassificationModule"),
    "targets of the wrong shape for the loss": (
        [*CLASSIFIER, *MLP, "--model.init_args.mode", "multilabel", *CSV, "[label]", "--data.init_args.task",
         "classification"],
        "mode=multilabel needs targets of shape (N, 3) (one 0/1 column per label) but the data gives (8,)"),
    "a segmentation model on classification data": (
        ["--model", "SegmentationModule", "--model.init_args.encoder", "test_resnet", "--model.init_args.num_classes",
         "10", "--model.init_args.in_chans", "1", "--data", "DigitsDataModule", "--data.init_args.image_size", "16"],
        "the segmentation model needs a mask per image (integer targets of shape (N, H, W)) but the data gives one "
        "label per image, shape (8,); train a ClassificationModule on this data"),
    "a classifier on segmentation masks": (
        [*CLASSIFIER[:2], "--model.init_args.num_classes", "4", "--model.init_args.backbone", "test_resnet", "--data",
         "ShapesDataModule", "--data.init_args.image_size", "16", "--data.init_args.num_train", "16"],
        "the data gives a mask per image (shape (8, 16, 16)) but the model is a classifier, which needs one label "
        "per image; train a SegmentationModule on this data"),
}


@pytest.fixture
def table(workdir: Path) -> Path:
    lines = ["x1,x2,size,label"] + [f"{i % 3},{i % 5},{i * 0.5},{'abc'[i % 3]}" for i in range(30)]
    (workdir / "table.csv").write_text("\n".join(lines) + "\n")
    return workdir


@pytest.mark.parametrize("case", list(CASES))
def test_a_mismatch_stops_fit_in_one_line_without_a_run_folder(case: str, table: Path, trainkit,
                                                               capsys: pytest.CaptureFixture) -> None:
    args, expected = CASES[case]
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             "--data.init_args.batch_size", "8"]
    capsys.readouterr()
    assert trainkit("fit", *args, *quiet) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not any((table / "runs").rglob("version_*")), "no run folder is left behind"
    if case in ("own network too narrow", "label outside the classes"):
        assert trainkit("check", *args, *quiet) == 2
        assert f"trainkit check: problem: {expected}" in capsys.readouterr().err
