"""Language-model tasks: the SFT loss ignores prompts, the DPO loss is the formula, the reference stays frozen and
out of checkpoints, LoRA adapts only its adapters and merges exactly, and the CLI runs SFT then DPO (and DDP)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from tests.conftest import DOCTOR_OFF, REPO
from tests.ddp_fits import ddp_fits
from trainkit.callbacks import LoRA
from trainkit.data import InstructionDataModule, PreferenceDataModule
from trainkit.losses.dpo import DPOLoss
from trainkit.metrics.language import IGNORE
from trainkit.models.lora import merge_lora
from trainkit.optim import OptimizerConfig
from trainkit.tasks import CausalLMModule, DPOModule
from trainkit.tasks.language import REFERENCE, sequence_logps

TINY = {"model_type": "llama", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 64}
DATA = {"template": "{instruction} {input} =", "max_length": 32, "batch_size": 8, "generated": 300,
        "generated_val": 16, "generated_test": 16}
SFT = REPO / "configs" / "language" / "sft.yaml"
DPO = REPO / "configs" / "language" / "dpo.yaml"
TINY_CLI = [
    "--model.init_args.model_config", "{model_type: llama, hidden_size: 32, num_hidden_layers: 1, "
    "num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64}",
    "--data.init_args.generated", "300", "--data.init_args.generated_val", "16", "--data.init_args.generated_test",
    "16", "--data.init_args.batch_size", "8", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--trainer.log_every_n_steps", "1", *DOCTOR_OFF,
]


def _trainer(tmp_path: Path, *callbacks: Callback, **kwargs: object) -> Trainer:
    options = {"max_epochs": 1, "limit_train_batches": 4, "limit_val_batches": 1, "logger": False,
               "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False,
               "default_root_dir": tmp_path, **kwargs}
    return Trainer(callbacks=list(callbacks), **options)


def _batch(data: InstructionDataModule | PreferenceDataModule) -> dict:
    data.setup("fit")
    return next(iter(data.val_dataloader()))


class _Snapshot(Callback):
    """The weights as training starts (after LoRA added its adapters)."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.before = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def test_prompt_tokens_contribute_nothing_to_the_sft_loss() -> None:
    model = CausalLMModule(model_config=TINY)
    batch = _batch(InstructionDataModule(**DATA))
    loss, _, _ = model.step(batch, "val")
    logits = model(batch["input_ids"], batch["attention_mask"])
    terms = []
    for row in range(len(batch["labels"])):  # by hand: -log p(response token | everything before it)
        prompt_length = len(batch["prompt_ids"][row][batch["prompt_mask"][row].bool()])
        length = int(batch["attention_mask"][row].sum())
        for t in range(prompt_length, length):
            terms.append(-logits[row, t - 1].log_softmax(-1)[batch["input_ids"][row, t]])
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-5)
    # changing every prompt token's label changes nothing; labelling the prompt would
    assert all(batch["labels"][row, t] == IGNORE for row in range(8) for t in range(3))
    with_prompt = {**batch, "labels": torch.where(batch["attention_mask"].bool(), batch["input_ids"], IGNORE)}
    assert model.step(with_prompt, "val")[0].item() != pytest.approx(loss.item())


class _Gradients(Callback):
    """The gradient the first optimizer step takes (after the window's scaling, before clipping)."""

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: object) -> None:
        if trainer.global_step == 0:
            self.grads = [p.grad.clone() for p in pl_module.parameters() if p.grad is not None]


def _first_step_gradients(
    tmp_path: Path, batches: list[dict], accumulate: int, per_micro_batch: bool = False
) -> tuple[list, float, torch.Tensor | None]:
    """The first step's gradients, the last logged train/loss and the step loss the guards judge, from the same
    initial weights each time."""
    torch.manual_seed(0)
    model = CausalLMModule(model_config=TINY)
    if per_micro_batch:  # the old behaviour: each micro-batch's own token mean
        model.token_mean_loss = False
    grads = _Gradients()
    trainer = _trainer(tmp_path, grads, max_steps=1, limit_val_batches=0, accumulate_grad_batches=accumulate)
    trainer.fit(model, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return grads.grads, trainer.callback_metrics["train/loss_step"].item(), model.step_loss


def test_accumulated_micro_batches_give_the_full_batch_gradient(tmp_path: Path) -> None:
    batch = _batch(InstructionDataModule(**DATA))
    order = (batch["labels"] != IGNORE).sum(-1).argsort()  # short answers in one half, long ones in the other
    halves = []
    for rows in order.chunk(2):  # each half padded to its own length, as a collate would
        length = int(batch["attention_mask"][rows].sum(-1).max())
        halves.append({key: batch[key][rows, :length] for key in ("input_ids", "attention_mask", "labels")})
    targets = [int((half["labels"] != IGNORE).sum()) for half in halves]
    assert targets[0] != targets[1]
    whole = {key: batch[key] for key in ("input_ids", "attention_mask", "labels")}
    full, logged, judged = _first_step_gradients(tmp_path, [whole], accumulate=1)
    assert float(judged) == pytest.approx(logged)  # the spike guard judges the per-token mean, not the token sum
    accumulated, _, _ = _first_step_gradients(tmp_path, halves, accumulate=2)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(full, accumulated, strict=True))
    torch.manual_seed(0)
    assert logged == pytest.approx(CausalLMModule(model_config=TINY).step(whole, "train")[0].item(), rel=1e-5)
    old, _, _ = _first_step_gradients(tmp_path, halves, accumulate=2, per_micro_batch=True)
    assert not all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(full, old, strict=True))


def test_dpo_loss_matches_the_formula() -> None:
    policy_chosen, policy_rejected = torch.tensor([-1.0, -4.0]), torch.tensor([-3.0, -2.0])
    ref_chosen, ref_rejected = torch.tensor([-2.0, -3.0]), torch.tensor([-2.0, -3.0])
    # beta (margin of log-ratios): 0.1 * ((-1 + 3) - 0) = 0.2 and 0.1 * ((-4 + 2) - 0) = -0.2
    plain = (math.log1p(math.exp(-0.2)) + math.log1p(math.exp(0.2))) / 2
    loss, chosen, rejected = DPOLoss(beta=0.1)(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    assert loss.item() == pytest.approx(plain)
    assert chosen.tolist() == pytest.approx([0.1, -0.1]) and rejected.tolist() == pytest.approx([-0.1, 0.1])
    smoothed = DPOLoss(beta=0.1, label_smoothing=0.2)(policy_chosen, policy_rejected, ref_chosen, ref_rejected)[0]
    assert smoothed.item() == pytest.approx(plain)  # symmetric pair: smoothing moves each term the other way
    one = DPOLoss(beta=0.5, label_smoothing=0.2)(*(t[:1] for t in (policy_chosen, policy_rejected,
                                                                    ref_chosen, ref_rejected)))[0]
    assert one.item() == pytest.approx(0.8 * math.log1p(math.exp(-1.0)) + 0.2 * math.log1p(math.exp(1.0)))


def test_sequence_log_probabilities_sum_the_labelled_tokens() -> None:
    logits = torch.randn(2, 4, 5)
    labels = torch.tensor([[IGNORE, IGNORE, 3, 1], [IGNORE, 2, IGNORE, IGNORE]])
    logp = logits.log_softmax(-1)
    expected = [logp[0, 1, 3] + logp[0, 2, 1], logp[1, 0, 2]]
    assert sequence_logps(logits, labels).tolist() == pytest.approx([float(e) for e in expected])


def test_dpo_starts_at_log_2_and_its_reference_never_changes_nor_is_saved(tmp_path: Path) -> None:
    model = DPOModule(reference="initial", model_config=TINY, optimizer=OptimizerConfig(lr=0.01))
    data = PreferenceDataModule(**DATA)
    loss, chosen, rejected = model.step(_batch(data), "val")
    assert loss.item() == pytest.approx(math.log(2)) and chosen.abs().max() == 0 and rejected.abs().max() == 0
    reference = {k: v.clone() for k, v in model.reference_model.state_dict().items()}
    trainer = _trainer(tmp_path, enable_checkpointing=True)
    trainer.fit(model, datamodule=data)
    assert all(torch.equal(v, reference[k]) for k, v in model.reference_model.state_dict().items())
    assert not model.reference_model.training and not any(p.requires_grad for p in model.reference_model.parameters())
    policy = model.model.state_dict()
    assert any(not torch.equal(policy[k], reference[k]) for k in reference)
    path = tmp_path / "dpo.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    assert saved and not any(k.startswith(f"{REFERENCE}.") for k in saved)
    restored = DPOModule.load_from_checkpoint(path)
    assert all(torch.equal(v, policy[k]) for k, v in restored.model.state_dict().items())


def test_sft_weight_adds_the_chosen_answers_mean_token_loss() -> None:
    plain = DPOModule(reference="initial", model_config=TINY)
    weighted = DPOModule(reference="initial", model_config=TINY, sft_weight=0.5)
    weighted.load_state_dict(plain.state_dict())
    batch = _batch(PreferenceDataModule(**DATA))
    logits = plain(batch["input_ids"], batch["attention_mask"])
    chosen_rows = len(batch["labels"]) // 2
    terms = [-logits[row, t - 1].log_softmax(-1)[batch["labels"][row, t]]  # by hand, chosen answers only
             for row in range(chosen_rows) for t in range(1, batch["labels"].shape[1])
             if batch["labels"][row, t] != IGNORE]
    expected = plain.step(batch, "val")[0] + 0.5 * torch.stack(terms).mean()
    assert weighted.step(batch, "val")[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_lora_changes_only_adapters_and_a_merge_keeps_the_outputs(tmp_path: Path) -> None:
    model = CausalLMModule(model_config=TINY, optimizer=OptimizerConfig(lr=0.01))
    data = InstructionDataModule(**DATA)
    snapshot = _Snapshot()
    _trainer(tmp_path, LoRA(r=4, target_modules=["q_proj", "v_proj"]), snapshot).fit(model, datamodule=data)
    after = model.state_dict()
    changed = {k for k, v in after.items() if not torch.equal(v, snapshot.before[k])}
    assert any(".q_proj.lora_B." in k for k in changed) and any(".v_proj.lora_B." in k for k in changed)
    assert all(".lora_" in k for k in changed), changed
    batch = _batch(data)
    model.eval()
    with torch.no_grad():
        adapted = model(batch["input_ids"], batch["attention_mask"])
        merge_lora(model)
        merged = model(batch["input_ids"], batch["attention_mask"])
    assert not any(".lora_" in k for k in model.state_dict())
    torch.testing.assert_close(merged, adapted, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_sft_then_dpo_through_the_cli_with_lora(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    runs = workdir / "elsewhere"
    lora = ["--lora.r", "4", "--lora.target_modules", "[q_proj, v_proj]"]
    assert trainkit("fit", "--config", SFT, *TINY_CLI, "--runs_dir", runs, *lora) == 0
    sft_run = runs / "lm_sft" / "version_0"
    saved = torch.load(sft_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert any(".q_proj.lora_A." in k for k in saved) and any(".v_proj.lora_A." in k for k in saved)
    rows = list(csv.DictReader((sft_run / "metrics.csv").open()))
    assert any(r.get("test/exact_match") for r in rows) and any(r.get("train/tokens") for r in rows)
    # the DPO config finds the SFT run's best checkpoint under --runs_dir by its experiment name
    assert trainkit("fit", "--config", DPO, "--runs_dir", runs, *TINY_CLI[2:]) == 0
    out = capsys.readouterr()
    assert str((sft_run / "checkpoints" / "best.ckpt").resolve()) in out.err + out.out
    rows = list(csv.DictReader((runs / "lm_dpo" / "version_0" / "metrics.csv").open()))
    tested = next(r for r in rows if r.get("test/reward_acc"))
    assert {"test/exact_match", "test/margin", "test/chosen_reward", "test/rejected_reward"} <= set(tested)
    best = runs / "lm_dpo" / "version_0" / "checkpoints" / "best.ckpt"
    assert trainkit("predict", "--config", DPO, "--runs_dir", runs, *TINY_CLI[2:], "--ckpt_path", best) == 0
    written = next((runs / "lm_dpo" / "version_0" / "predict").rglob("predictions.jsonl")).read_text().splitlines()
    assert len(written) == 16 and '"generated"' in written[0] and '"reference"' in written[0]


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("trainkit: error:")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("config", "args", "expected"),
    [
        (DPO, ["--model.init_args.reference", "null"], "DPO needs a reference model"),
        (DPO, ["--model.init_args.reference", "no_such_run"], "no SFT checkpoint for reference 'no_such_run'"),
        (SFT, ["--data.init_args.max_length", "5"], "max_length=5 is shorter than every"),
    ],
    ids=["dpo-without-reference", "dpo-reference-not-trained", "max-length-below-prompts"],
)
def test_bad_inputs_end_in_one_line(
    workdir: Path, trainkit, capsys: pytest.CaptureFixture, config: Path, args: list[str], expected: str
) -> None:
    assert trainkit("fit", "--config", config, *TINY_CLI, *args) != 0
    assert expected in _error_line(capsys)


def test_bad_jsonl_file_ends_in_one_line(workdir: Path, trainkit, capsys: pytest.CaptureFixture) -> None:
    (workdir / "data.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n')
    (workdir / "empty.jsonl").write_text("")
    assert trainkit("fit", "--config", SFT, *TINY_CLI, "--data.init_args.path", "data.jsonl") != 0
    assert "data.jsonl line 2: missing field 'output'" in _error_line(capsys)
    assert trainkit("fit", "--config", SFT, *TINY_CLI, "--data.init_args.path", "empty.jsonl") != 0
    assert "empty.jsonl holds no records" in _error_line(capsys)


def test_pretrained_name_with_no_internet_ends_in_one_line(workdir: Path, trainkit, capsys: pytest.CaptureFixture,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, when imported: its constant stands in for a machine with no internet
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    code = trainkit("fit", "--config", REPO / "configs" / "language" / "hub_lora.yaml",
                    "--model.init_args.model_name", "trainkit-test/no-such-model")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("trainkit: error:")]
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert "cannot load the" in lines[0] and "trainkit-test/no-such-model" in lines[0]


@pytest.mark.slow
@pytest.mark.xdist_group("ddp_fits")
def test_sft_on_two_ddp_processes() -> None:
    out, _ = ddp_fits()  # `trainkit fit --config SFT TINY_CLI` on 2 processes, beside the other DDP tests' fits
    rows = list(csv.DictReader((out / "sft/runs/lm_sft/ddp/metrics.csv").open()))
    tested = next(r for r in rows if r.get("test/exact_match"))
    assert 0 <= float(tested["test/exact_match"]) <= 1 and float(tested["test/loss"]) > 0
    # 300 generated records less 32 held out, 8 a batch, 2 processes: each rank takes 4 of its 17 batches
    steps = {int(r["step"]) for r in rows if r.get("train/loss_step")}
    assert max(steps) == 3
