"""`trainkit export`: every format, fp32 and int8, checked against the checkpoint it came from."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule

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
def test_static_int8_export_of_a_cnn_runs_int8_convolutions_and_keeps_predictions(run_dir: Path, format: str) -> None:
    report = export(_best(run_dir), format=format, quantize="int8", calibration_batches=2)  # a CNN: static
    assert report.path.name == f"best-int8.{format}.pt"
    assert report.quantization.startswith("static int8, ") and "calibrated on 2 batches" in report.quantization
    assert 0 < report.max_abs_diff < 0.5  # really int8 (not a copy of fp32), yet close
    assert report.agreement >= 0.9
    if format == "state_dict":
        state = torch.load(report.path, weights_only=True)
        int8_weights = [k for k, v in state.items() if k.endswith("weight") and v.dtype == torch.qint8]
        fp32 = torch.load(_best(run_dir), map_location="cpu", weights_only=True)["state_dict"]
        convs = sum(v.dim() == 4 for k, v in fp32.items() if k.endswith("weight"))
        assert len(int8_weights) >= convs > 0  # every convolution (and the head) holds per-channel int8 weights
        assert all(state[k].qscheme() == torch.per_channel_affine for k in int8_weights)
    else:
        graph = str(torch.jit.load(str(report.path)).inlined_graph)
        assert "quantized::conv2d" in graph and "aten::conv2d" not in graph


def test_dynamic_int8_quantises_only_linear_layers(run_dir: Path) -> None:
    report = export(_best(run_dir), format="state_dict", quantize="int8-dynamic")
    assert report.quantization == "dynamic int8 (Linear layers)" and report.agreement >= 0.9
    state = torch.load(report.path, weights_only=False)
    assert any(key.endswith("_packed_params._packed_params") for key in state)  # int8 packed Linear weights
    assert all(v.dtype == torch.float32 for k, v in state.items() if "conv" in k and k.endswith("weight"))


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


@pytest.mark.slow
@pytest.mark.parametrize("quantize", [None, "int8"])
def test_onnx_export_runs_in_onnxruntime_with_any_batch_size(run_dir: Path, quantize: str | None) -> None:
    import onnxruntime

    report = export(_best(run_dir), format="onnx", quantize=quantize)
    # The trace leaves no second ClassificationModule behind (a later `--model ClassificationModule` in the same
    # process failed as ambiguous).
    assert [c.__name__ for c in _subclasses(LightningModule)].count("ClassificationModule") == 1
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
    assert trainkit("export", "--ckpt_path", "last", "--experiment", "digits", "--format", "onnx",
                    "--quantize", "int8-static") == 2
    assert "int8-static is not available for --format onnx; use --format torchscript" in capsys.readouterr().err


@pytest.mark.parametrize("format", ["torchscript", "onnx"])
def test_an_output_folder_that_cannot_be_written_is_named_before_the_export(tmp_path: Path, format: str) -> None:
    from trainkit.errors import ConfigError

    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    (tmp_path / "a_file").write_text("")  # a folder that cannot be made (root ignores read-only modes)
    with pytest.raises(ConfigError, match=rf"^cannot write the export into {tmp_path / 'a_file'} \(\w+Error: .*\); "
                                          "pass --output in a writable folder"):
        export(ckpt_path=str(ckpt), format=format, output=str(tmp_path / "a_file" / f"model.{format}"))
