"""`trainkit export`: every format, fp32 and int8, checked against the checkpoint it came from."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_DIGITS
from trainkit.commands.export import ExportMismatch, export, load_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny digits run (test_resnet, 16 px) to export from."""
    from trainkit.console import main

    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        main(["fit", *TINY_DIGITS, "--trainer.limit_train_batches", "8"])
    return root / "runs" / "digits" / "version_0"


def _best(run_dir: Path) -> str:
    return str(run_dir / "checkpoints" / "best.ckpt")


@pytest.mark.parametrize("format", ["torchscript", "state_dict"])
def test_fp32_export_reproduces_the_checkpoint(run_dir: Path, format: str) -> None:
    report = export(_best(run_dir), format=format)
    assert report.path == run_dir / "export" / f"best.{format}.pt"
    assert report.max_abs_diff <= 1e-4 and report.agreement == 1.0
    model, batch = load_checkpoint(_best(run_dir))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if format == "torchscript":
            outputs = torch.jit.load(str(report.path))(batch[:5])  # a file that runs on its own, any batch size
        else:
            model.load_state_dict(torch.load(report.path))
            outputs = model(batch[:5])
        torch.testing.assert_close(outputs, model(batch[:5]))


@pytest.mark.parametrize("format", ["torchscript", "state_dict"])
def test_int8_export_quantises_linear_layers_and_keeps_predictions(run_dir: Path, format: str) -> None:
    report = export(_best(run_dir), format=format, quantize="int8")
    assert report.path.name == f"best-int8.{format}.pt"
    assert 0 < report.max_abs_diff < 0.1  # really int8 (not a copy of fp32), yet close
    assert report.agreement >= 0.9
    if format == "state_dict":
        state = torch.load(report.path, weights_only=False)
        assert any(key.endswith("_packed_params._packed_params") for key in state)  # int8 packed Linear weights


@pytest.mark.slow
@pytest.mark.parametrize("quantize", [None, "int8"])
def test_onnx_export_runs_in_onnxruntime_with_any_batch_size(run_dir: Path, quantize: str | None) -> None:
    import onnxruntime

    report = export(_best(run_dir), format="onnx", quantize=quantize)
    assert report.agreement >= (1.0 if quantize is None else 0.9)
    assert report.max_abs_diff <= (1e-4 if quantize is None else 0.1)
    model, batch = load_checkpoint(_best(run_dir))
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    (outputs,) = session.run(None, {"input": batch[:3].numpy()})
    assert outputs.shape == (3, 10)


def test_failed_check_keeps_the_file_and_says_why(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "strict.pt"
    with pytest.raises(ExportMismatch, match="differs from the checkpoint"):
        export(_best(run_dir), format="torchscript", quantize=None, output=str(out), atol=-1.0)
    assert out.is_file()


def test_cli_exports_by_alias_and_rejects_bad_input(run_dir: Path, trainkit, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(run_dir.parents[2])
    assert trainkit("export", "--ckpt_path", "last", "--experiment", "digits", "--format", "state_dict") == 0
    assert "exported" in capsys.readouterr().out and (run_dir / "export" / "last.state_dict.pt").is_file()
    assert trainkit("export", "--ckpt_path", "missing.ckpt") == 2
    assert "checkpoint 'missing.ckpt' does not exist" in capsys.readouterr().err
    assert trainkit("export", "--ckpt_path", "last", "--experiment", "digits", "--format", "pdf") == 2
    assert "pdf" in capsys.readouterr().err
