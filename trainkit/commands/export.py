"""`trainkit export`: a checkpoint to TorchScript, ONNX or a state dict, optionally int8, checked on a real batch.

    trainkit export --ckpt_path best --experiment digits --format onnx --quantize int8
    trainkit export --ckpt_path best --experiment digits --quantize int8 --calibration_batches 16   # a CNN: static
    trainkit export --ckpt_path best --experiment lm_sft --format hf [--merge]   # a Hugging Face folder

The export is run on one batch of the run's own data (from the DataModule saved in the checkpoint) and compared
with the checkpoint's model: fp32 exports must match it to `atol`, int8 exports must agree on the predicted class
for at least `min_agreement` of the samples. The file is kept either way; a failed check exits non-zero.
"""

from __future__ import annotations

import copy
import gc
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch import Tensor, nn

from trainkit.checkpoints import load_checkpoint as read_checkpoint
from trainkit.checkpoints import saved_class
from trainkit.errors import ConfigError
from trainkit.models.int8 import has_convolutions, int8_convolutions, quantize_dynamic_int8, quantize_static_int8
from trainkit.runs import resolve_ckpt_path, run_dir_of_checkpoint

Format = Literal["torchscript", "onnx", "state_dict", "hf"]
Quantize = Literal["int8", "int8-static", "int8-dynamic"]
_SUFFIX = {"torchscript": ".torchscript.pt", "onnx": ".onnx", "state_dict": ".state_dict.pt", "hf": "-hf"}


class ExportMismatch(RuntimeError):
    """The exported model's outputs differ from the checkpoint's beyond the tolerance."""


@dataclass
class ExportReport:
    """Where the export went and how closely it reproduces the checkpoint on the check batch."""

    path: Path
    max_abs_diff: float
    agreement: float
    """Share of samples whose predicted class (argmax) is the checkpoint's."""
    quantization: str = ""
    """How it was quantized, in words (empty for fp32)."""


def export(
    ckpt_path: str,
    format: Format = "torchscript",
    quantize: Quantize | None = None,
    calibration_batches: int = 8,
    output: str | None = None,
    experiment: str = "default",
    runs_dir: str = "runs",
    atol: float = 1e-4,
    min_agreement: float = 0.9,
    merge: bool = False,
) -> ExportReport:
    """Export a checkpoint and check the result against it on one batch of its data.

    Args:
        ckpt_path: a .ckpt file, or best/last of the newest run of --experiment.
        format: torchscript (traced), onnx (dynamic batch size), state_dict (a torch.save'd dict), or hf (a
            language model as a Hugging Face folder: safetensors, config, tokenizer, generation config).
        quantize: int8: static for a network with convolutions, else dynamic (onnx: always dynamic, onnxruntime);
            int8-static: calibrated post-training quantization (conv-bn-relu fused, per-channel int8 weights, int8
            activations; convolutions and Linear layers run as int8 kernels on the CPU); int8-dynamic: int8 Linear
            weights, activations quantized per batch (MLPs and language models; no speed-up for a CNN).
        calibration_batches: static int8: validation batches of the run's own data whose activation ranges set the
            int8 scales.
        output: file to write; by default <run>/export/<checkpoint name>[-int8]<format suffix>.
        experiment: experiment whose runs `best`/`last` refer to.
        runs_dir: root folder of all runs.
        atol: largest absolute output difference accepted for a fp32 export.
        min_agreement: smallest share of same predicted classes accepted for an int8 export.
        merge: hf export of a LoRA run: fold the adapters into the weights instead of writing them in PEFT's format.
    """
    ckpt = resolve_ckpt_path(ckpt_path, runs_dir, experiment)
    if format == "hf":
        return _export_hf(Path(ckpt), Path(output) if output else None, merge)
    path = Path(output) if output else _default_output(Path(ckpt), format, quantize)
    _check_writable(path.parent)
    model, datamodule = load_run(ckpt)
    batch = _check_batch(datamodule)
    static = _is_static(quantize, model, format)
    calibration = _calibration(datamodule, calibration_batches) if static else []

    def quantized(net: nn.Module) -> nn.Module:
        """`net` as exported: int8 (static or dynamic), or as it is (fp32, or ONNX, which onnxruntime quantizes)."""
        if quantize is None or format == "onnx":
            return net
        return quantize_static_int8(net, calibration) if static else quantize_int8(net)

    with torch.no_grad():
        reference = model(batch)
        exported = quantized(model)
        if format == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TorchScript is deprecated in torch and Lightning, yet still used
                traced = (torch.jit.trace(exported, batch) if static  # an fx GraphModule has no to_torchscript
                          else exported.to_torchscript(method="trace", example_inputs=batch))
                torch.jit.save(traced, str(path))
                outputs = torch.jit.load(str(path))(batch)
        elif format == "state_dict":
            torch.save(exported.state_dict(), path)
            loaded = quantized(copy.deepcopy(model))  # the same structure, then the saved int8 weights and scales
            # packed int8 weights of some layers (e.g. Linear after a conv stage) are torch ScriptObjects
            with torch.serialization.safe_globals([torch.ScriptObject]):
                loaded.load_state_dict(torch.load(path, weights_only=True))
            outputs = loaded(batch)
        else:
            outputs = _export_onnx(model, batch, path, quantize)
    report = compare(reference, outputs, path)
    if quantize is not None:
        report.quantization = (f"static int8, {int8_convolutions(exported)} int8 convolutions, calibrated on "
                               f"{len(calibration)} batches" if static else "dynamic int8 (Linear layers)")
    if quantize is None and report.max_abs_diff > atol:
        raise ExportMismatch(f"{path} differs from the checkpoint by {report.max_abs_diff:.2e} > atol={atol}")
    if quantize is not None and report.agreement < min_agreement:
        raise ExportMismatch(
            f"{path} agrees with the checkpoint on {report.agreement:.1%} of predictions < {min_agreement:.0%}; "
            "the model may not suit int8 (try without --quantize)"
        )
    return report


def _check_writable(folder: Path) -> None:
    """Create `folder` and write a probe in it, so a read-only or full place is named before the export runs (ONNX
    and TorchScript report it without the path, TorchScript as a C++ `enforce fail`)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"0")
    except OSError as error:
        raise ConfigError(f"cannot write the export into {folder} ({type(error).__name__}: {error.strerror or error}); "
                          "pass --output in a writable folder") from error


def load_checkpoint(ckpt_path: str | Path) -> tuple[nn.Module, Tensor]:
    """The checkpoint's task module (eval mode, CPU) and one input batch of its test data."""
    model, datamodule = load_run(ckpt_path)
    return model, _check_batch(datamodule)


def _inputs(batch: Any) -> Tensor:
    return batch[0] if isinstance(batch, list | tuple) else batch


def _check_batch(datamodule: LightningDataModule) -> Tensor:
    """One input batch of the run's test data: the export is compared with the checkpoint on it."""
    datamodule.setup("test")
    return _inputs(next(iter(datamodule.test_dataloader())))


def _calibration(datamodule: LightningDataModule, batches: int) -> list[Tensor]:
    """Up to `batches` input batches of the run's validation data (no augmentation), to calibrate static int8."""
    if batches < 1:
        raise ConfigError(f"--calibration_batches {batches} is too few; static int8 needs at least 1 (8 is typical)")
    datamodule.setup("validate")  # not "fit": a distillation's data would run its teacher over the training set
    return [_inputs(batch) for batch, _ in zip(datamodule.val_dataloader(), range(batches), strict=False)]


def _is_static(quantize: Quantize | None, model: nn.Module, format: Format) -> bool:
    """Whether int8 is static: asked for, or `int8` on a network with convolutions (ONNX's int8 stays dynamic)."""
    if quantize == "int8-static" and format == "onnx":
        raise ConfigError("--quantize int8-static is not available for --format onnx; use --format torchscript "
                          "(or state_dict), or --quantize int8 for onnxruntime's dynamic int8")
    return format != "onnx" and (quantize == "int8-static" or (quantize == "int8" and has_convolutions(model)))


def load_run(ckpt_path: str | Path) -> tuple[LightningModule, LightningDataModule]:
    """Rebuild a checkpoint's task (eval mode, CPU, trained weights) and DataModule.

    From the run's saved config.yaml when the checkpoint lies in a run folder (this covers networks given by
    class_path, which are not among the hyperparameters), else from the class paths saved in the checkpoint.
    """
    checkpoint = read_checkpoint(ckpt_path)
    run_dir = run_dir_of_checkpoint(ckpt_path)
    config_path = run_dir / "config.yaml" if run_dir is not None else None
    if config_path is not None and config_path.is_file():
        import yaml

        from trainkit.cli import TrainkitCLI

        config = yaml.safe_load(config_path.read_text())
        for key in ("ckpt_path", "weights_only"):  # fit-only keys; the model and data are all we need
            config.pop(key, None)
        config.setdefault("trainer", {}).update(logger=False, accelerator="cpu", devices=1)
        cli = TrainkitCLI(args=config, run=False)
        model, datamodule = cli.model, cli.datamodule
        model.on_load_checkpoint(checkpoint)  # as Lightning's loading does: LoRA adapters, frozen helpers
        model.load_state_dict(checkpoint["state_dict"])
    else:
        model = saved_class(checkpoint, ckpt_path).load_from_checkpoint(ckpt_path, map_location="cpu")
        datamodule = saved_class(checkpoint, ckpt_path, "datamodule_hyper_parameters").load_from_checkpoint(ckpt_path)
    return model.cpu().eval(), datamodule


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of `model` whose Linear layers run in int8 (weights quantised ahead, activations per batch)."""
    return quantize_dynamic_int8(model)


def compare(reference: Tensor, outputs: Any, path: Path) -> ExportReport:
    """How far `outputs` are from `reference`: largest absolute difference and argmax agreement."""
    outputs = torch.as_tensor(outputs[0] if isinstance(outputs, list | tuple) else outputs, dtype=reference.dtype)
    diff = (outputs - reference).abs().max().item()
    agreement = (outputs.argmax(-1) == reference.argmax(-1)).float().mean().item() if reference.dim() > 1 else 1.0
    return ExportReport(path=path, max_abs_diff=diff, agreement=agreement)


def _export_onnx(model: nn.Module, batch: Tensor, path: Path, quantize: str | None) -> Any:
    import onnxruntime

    batch_dim = torch.export.Dim("batch", min=1)
    model.to_onnx(path, batch, dynamo=True, input_names=["input"], output_names=["output"],
                  dynamic_shapes=({0: batch_dim},), external_data=False)
    # torch.export traces through same-named subclasses of the modules (fx's AttrProxy), left in reference cycles: a
    # second `ClassificationModule` in this process until collected, and jsonargparse refuses the short class name.
    gc.collect()
    if quantize is not None:  # torch.ao's quantised modules do not export to ONNX; onnxruntime quantises the graph
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32_path = path.with_suffix(".fp32.onnx")
        path.replace(fp32_path)
        quantize_dynamic(str(fp32_path), str(path), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm"])
        fp32_path.unlink()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": batch.numpy()})


def _export_hf(ckpt: Path, output: Path | None, merge: bool) -> ExportReport:
    """A language-model checkpoint as a Hugging Face folder, checked to generate the same greedy tokens."""
    from trainkit.commands.hf_export import export_hf
    from trainkit.models.lora import saved_lora_settings

    lora = saved_lora_settings(read_checkpoint(ckpt))
    folder = output or _default_output(ckpt, "hf", "merged" if merge and lora else None)
    _check_writable(folder.parent)
    model, datamodule = load_run(ckpt)
    if getattr(datamodule, "tokenizer", "") is None:  # no trainer attached: it would fall back to the byte tokenizer
        datamodule.tokenizer = model.tokenizer
    datamodule.setup("test")
    batch = next(iter(datamodule.test_dataloader()))
    reference, loaded = export_hf(model, batch, folder, merge, lora.as_dict() if lora else None)
    same = (reference == loaded).all(-1).float().mean().item()
    report = ExportReport(path=folder, max_abs_diff=float((reference != loaded).sum()), agreement=same)
    if same < 1:
        raise ExportMismatch(f"{folder} generates other tokens than the checkpoint on {1 - same:.1%} of test prompts")
    return report


def _default_output(ckpt: Path, format: Format, quantize: str | None) -> Path:
    folder = (run_dir_of_checkpoint(ckpt) or ckpt.parent) / "export"
    return folder / f"{ckpt.stem}{f'-{quantize}' if quantize else ''}{_SUFFIX[format]}"


def main(argv: list[str]) -> None:
    """`trainkit export`: parse the flags from `export`'s signature, export, print where and how close."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="trainkit export", description=__doc__.splitlines()[0], exit_on_error=False)
    parser.add_function_arguments(export, as_positional=False)
    config = parser.parse_args(argv)
    report = export(**config.as_dict())
    how = f"{report.quantization}; " if report.quantization else ""
    print(f"trainkit: exported {report.path} ({how}max |diff| {report.max_abs_diff:.2e}, "
          f"same prediction on {report.agreement:.1%} of a check batch)")
