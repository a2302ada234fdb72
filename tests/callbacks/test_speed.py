"""Speed options on CPU: channels_last, gradient checkpointing, torch.compile, and the flags that set them."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import TINY_DIGITS
from trainkit.callbacks import Speed
from trainkit.callbacks.speed import enable_grad_checkpointing
from trainkit.errors import ConfigError
from trainkit.tasks import ClassificationModule


def _images(count: int = 16, size: int = 16) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(count, 3, size, size, generator=generator), torch.arange(count) % 10)
    return DataLoader(data, batch_size=8)


def _trainer(*callbacks: Callback) -> Trainer:
    return Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks))


class _FirstConvOutput(Callback):
    """Keeps the output of the network's first convolution from the last training step."""

    def on_fit_start(self, trainer: Trainer, pl_module: ClassificationModule) -> None:
        conv = next(m for m in pl_module.modules() if isinstance(m, nn.Conv2d))
        conv.register_forward_hook(lambda module, args, out: setattr(self, "output", out))


def test_channels_last_trains_in_nhwc() -> None:
    model = ClassificationModule("test_resnet", num_classes=10)
    before = [p.detach().clone() for p in model.parameters()]
    probe = _FirstConvOutput()
    _trainer(Speed(channels_last=True), probe).fit(model, _images())
    conv_weights = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    assert not conv_weights[0].is_contiguous()  # really NHWC, not a shape where both layouts coincide
    assert probe.output.is_contiguous(memory_format=torch.channels_last) and not probe.output.is_contiguous()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_grad_checkpointing_recomputes_and_keeps_gradients() -> None:
    x, y = next(iter(_images()))
    grads, calls = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = ClassificationModule("test_resnet", num_classes=10)
        if checkpointing:
            assert len(enable_grad_checkpointing(model)) == 1
        count = [0]
        model.net.layer1[0].register_forward_pre_hook(lambda *_, c=count: c.__setitem__(0, c[0] + 1))
        model.criterion(model(x), y).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        calls.append(count[0])
    assert calls == [1, 2]  # the checkpointed block ran again in the backward pass
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain, rtol=1e-4, atol=1e-6)


def test_grad_checkpointing_of_a_hugging_face_language_model_recomputes_and_keeps_gradients() -> None:
    from trainkit.tasks import CausalLMModule

    tiny = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 64}
    ids = torch.randint(0, 250, (2, 8))
    grads, calls = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = CausalLMModule(model_config=tiny).train()
        if checkpointing:
            assert enable_grad_checkpointing(model) and model.model.model.gradient_checkpointing
        count = [0]
        model.model.model.layers[0].mlp.register_forward_pre_hook(lambda *_, c=count: c.__setitem__(0, c[0] + 1))
        model(ids).logsumexp(-1).mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        calls.append(count[0])
    assert calls == [1, 2]
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain, rtol=1e-4, atol=1e-6)


def test_grad_checkpointing_without_timm_backbone_is_a_config_error() -> None:
    model = ClassificationModule(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10)), num_classes=10)
    with pytest.raises(ConfigError, match="grad_checkpointing needs a timm backbone or a Hugging Face model"):
        enable_grad_checkpointing(model)


@pytest.mark.slow
def test_compile_compiles_the_forward_in_place() -> None:
    from torch._dynamo.utils import counters

    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 32), nn.ReLU(), nn.Linear(32, 10))
    model = ClassificationModule(net, num_classes=10).eval()
    keys = list(model.state_dict())
    x, _ = next(iter(_images()))
    counters.clear()
    Speed(compile=True).setup(_trainer(), model, "fit")
    with torch.no_grad():
        compiled, eager = model(x), model.forward(x)
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo really captured and compiled the forward
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    assert list(model.state_dict()) == keys  # compiled in place: checkpoints keep their keys


def test_speed_flags_from_the_cli(workdir, trainkit) -> None:  # noqa: ANN001
    code = trainkit("fit", *TINY_DIGITS, "--model.init_args.in_chans", "1",
                    "--speed.channels_last", "true", "--speed.grad_checkpointing", "true",
                    "--model.init_args.optimizer.implementation", "foreach")
    assert code == 0
    assert (workdir / "runs" / "digits" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    saved = (workdir / "runs" / "digits" / "version_0" / "config.yaml").read_text()
    assert "channels_last: true" in saved and "grad_checkpointing: true" in saved
