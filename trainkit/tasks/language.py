"""Language models: instruction tuning (next-token loss on the response) and preference tuning with DPO.

Both tasks hold a Hugging Face causal LM in `self.model` and its tokenizer in `self.tokenizer`; the text
DataModules tokenize with the model's tokenizer unless told otherwise. Val/test also greedily generate answers to
the prompts and log `exact_match` against the references.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.text import Perplexity

from trainkit.checkpoints import load_task
from trainkit.errors import ConfigError
from trainkit.losses.dpo import DPOLoss
from trainkit.metrics.language import IGNORE, TokenAccuracy, preference_metrics
from trainkit.models.language import BYTES, create_causal_lm, load_tokenizer
from trainkit.optim import OptimizerConfig, SchedulerConfig
from trainkit.runs import resolve_ckpt_path
from trainkit.tasks.base import TaskModule
from trainkit.tasks.frozen import FrozenModels

REFERENCE = "reference_model"
INITIAL = "initial"


class CausalLMModule(TaskModule):
    """Train a causal LM on next-token prediction over the labelled (response) tokens; logs loss, perplexity,
    token accuracy and, on val/test, exact match of greedy generations. `predict` writes generations as JSONL."""

    token_mean_loss = True
    """The training loss is a mean over target tokens: under gradient accumulation its gradient is divided by the
    whole window's target count (transformers' num_items_in_batch), not each micro-batch's. DPO's loss is a mean over
    pairs, which equal-sized micro-batches already get right, so DPO sets this False."""

    def __init__(
        self,
        model_name: str | None = None,
        model_config: dict[str, Any] | None = None,
        pretrained: bool = False,
        tokenizer: str | None = None,
        max_new_tokens: int = 32,
        optimizer: OptimizerConfig | None = None,
        scheduler: SchedulerConfig | None = None,
    ) -> None:
        """Each argument is a flag and a YAML key.

        Args:
            model_name: a Hugging Face causal LM (e.g. Qwen/Qwen2.5-0.5B), a local folder or a .gguf file: its
                architecture, and its weights when `pretrained`.
            model_config: instead of model_name, a model built with no download, e.g. {model_type: llama,
                hidden_size: 128, num_hidden_layers: 2, num_attention_heads: 4}; vocab_size defaults to the tokenizer's.
            pretrained: load model_name's pretrained weights (downloads once; needs internet or a filled cache).
            tokenizer: `bytes` (built in, no download) or a Hugging Face tokenizer; default model_name's, or bytes.
            max_new_tokens: longest generated answer, for exact match and predict.
        """
        super().__init__(optimizer=optimizer, scheduler=scheduler)
        self.save_hyperparameters()
        self.max_new_tokens = max_new_tokens
        self.tokenizer, self.model = self.build_model(model_name, model_config, pretrained, tokenizer)
        self.init_metrics({"token_acc": TokenAccuracy(), "perplexity": Perplexity(ignore_index=IGNORE)})
        self.exact_match = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        self.batch_tokens: Tensor | None = None
        """Non-padding tokens of the latest training batch (a device tensor), for throughput metrics."""
        self._window_targets: Tensor | None = None

    def build_model(
        self, model_name: str | None, model_config: dict[str, Any] | None, pretrained: bool, tokenizer: str | None
    ) -> tuple[Any, nn.Module]:
        """(tokenizer, causal LM) from the arguments."""
        loaded = load_tokenizer(tokenizer or (model_name if model_config is None and model_name else BYTES))
        return loaded, create_causal_lm(model_name, model_config, pretrained, loaded)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def optimized_module(self) -> nn.Module:
        """The language model: what the optimizer and LoRA adapt."""
        return self.model

    def step(self, batch: dict[str, Any], stage: str) -> tuple[Tensor, Tensor, Tensor]:
        logits = self(batch["input_ids"], batch["attention_mask"])[:, :-1]
        labels = batch["labels"][:, 1:]  # position t predicts token t + 1
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
        return loss, logits, labels

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        self.batch_tokens = batch["attention_mask"].sum()
        self.log("train/tokens", self.batch_tokens.float(), on_step=False, on_epoch=True, reduce_fx="sum",
                 batch_size=1)
        loss = super().training_step(batch, batch_idx)  # logged as the micro-batch's per-token mean
        if not self.token_mean_loss:
            return loss
        targets = (batch["labels"][:, 1:] != IGNORE).sum()
        self._window_targets = targets if self._window_targets is None else self._window_targets + targets
        self.step_loss = loss.detach()  # what the guards judge: a sum would swing with the batch's token count
        return loss * targets  # the token sum; optimizer_step divides the window's gradient by its target count

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Step on the accumulation window's per-token mean gradient (see `token_mean_loss`)."""
        if not self.token_mean_loss or optimizer_closure is None:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)

        def closure() -> Any:
            result = optimizer_closure()  # the window's last backward; callbacks and clipping see the scaled gradient
            self._scale_window_gradients()
            return result

        return super().optimizer_step(epoch, batch_idx, optimizer, closure)

    @torch.no_grad()
    def _scale_window_gradients(self) -> None:
        """Turn the accumulated token-sum gradient (divided by k by Lightning) into the window's per-token mean."""
        if self._window_targets is None:
            return
        # DDP averages gradients over ranks, so divide by the ranks' mean count: sum of gradients / sum of counts.
        # A device tensor throughout: no host sync.
        targets = self.trainer.strategy.reduce(self._window_targets.float(), reduce_op="mean").clamp(min=1)
        self._window_targets = None
        scale = self.trainer.accumulate_grad_batches / targets
        for param in self.parameters():
            if param.grad is not None:
                param.grad.mul_(scale)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = super().validation_step(batch, batch_idx)
        self._score_generations(batch, "val")
        return loss

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = super().test_step(batch, batch_idx)
        self._score_generations(batch, "test")
        return loss

    def _score_generations(self, batch: dict[str, Any], stage: str) -> None:
        """Exact match of greedy answers to the batch's prompts against its references."""
        if "prompt_ids" not in batch:
            return
        generated = self.generate(batch["prompt_ids"], batch["prompt_mask"])
        hits = [g.strip() == r.strip() for g, r in zip(generated, batch["references"], strict=True)]
        metric = self.exact_match[stage]
        metric.update(torch.tensor(hits, dtype=torch.float32, device=self.device))
        self.log(f"{stage}/exact_match", metric, on_epoch=True, prog_bar=True, batch_size=len(hits))

    @torch.no_grad()
    def generate(self, prompt_ids: Tensor, prompt_mask: Tensor) -> list[str]:
        """Greedy answers to left-padded prompts, as text without special tokens."""
        out = self.model.generate(
            input_ids=prompt_ids, attention_mask=prompt_mask, max_new_tokens=self.max_new_tokens, do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
        )
        return self.tokenizer.batch_decode(out[:, prompt_ids.shape[1]:], skip_special_tokens=True)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        data_tokenizer = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
        vocab = self.model.get_input_embeddings().num_embeddings
        if data_tokenizer is not None and len(data_tokenizer) > vocab:
            raise ConfigError(
                f"the data's tokenizer has {len(data_tokenizer)} tokens but the model only {vocab} embeddings; "
                "drop --data.init_args.tokenizer to use the model's own"
            )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, str]]:
        generated = self.generate(batch["prompt_ids"], batch["prompt_mask"])
        return [
            {"prompt": p, "generated": g, "reference": r}
            for p, g, r in zip(batch["prompts"], generated, batch["references"], strict=True)
        ]

    def write_predictions(self, predictions: list[Any], out_dir: Path) -> Path:
        """One JSON line per prompt: its record number (with --source), prompt, generated, reference (rows arrive
        per batch, or already flattened)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "predictions.jsonl"
        rows = [r for item in predictions for r in (item if isinstance(item, list) else [item])]
        keys = self.prediction_keys()  # record numbers of a --source file
        if keys is not None:
            rows = [{"source": key, **row} for key, row in zip(keys, rows, strict=True)]
        with path.open("w", encoding="utf-8") as file:
            for row in rows:
                file.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path


class ReferencePolicyModule(FrozenModels, CausalLMModule):
    """A policy that starts from its frozen reference: the SFT checkpoint at `reference_path`, or (None) the model the
    language-model arguments build. The shared start of DPO and the RL stage."""

    stage = "policy"
    """The name the start-up line gives the stage."""
    reference_path: Path | None

    def build_model(
        self, model_name: str | None, model_config: dict[str, Any] | None, pretrained: bool, tokenizer: str | None
    ) -> tuple[Any, nn.Module]:
        """The SFT checkpoint's tokenizer and model (adapters merged), or a model built from the arguments."""
        if self.reference_path is None:
            return super().build_model(model_name, model_config, pretrained, tokenizer)
        rank_zero_info(f"{self.stage}: policy and reference start from {self.reference_path}")
        return load_language_model(self.reference_path, "reference")


class DPOModule(ReferencePolicyModule):
    """Direct preference optimization: the policy learns to prefer the chosen answers over the rejected ones
    relative to a frozen reference model. Logs reward_acc, chosen/rejected rewards and their margin.

    The reference is a trainkit SFT checkpoint (the policy starts from the same weights), or `initial` (a copy of
    the policy as built from model_name/model_config). It never trains and is not saved in checkpoints.
    """

    frozen_models = (REFERENCE,)
    stage = "DPO"
    token_mean_loss = False  # a mean over pairs; the RPO term (sft_weight) stays each micro-batch's token mean

    def __init__(
        self, reference: str | None = None, beta: float = 0.1, label_smoothing: float = 0.0, sft_weight: float = 0.0,
        runs_dir: str = "runs", **kwargs: Any
    ) -> None:
        """Args:
        reference: an SFT run's experiment name (its newest best.ckpt under --runs_dir), a checkpoint path, or
            `initial`.
        beta: strength of the pull towards the reference (0.1 in the DPO paper; higher stays closer).
        label_smoothing: the chance a preference label is wrong (conservative DPO); 0 for plain DPO.
        sft_weight: weight of the chosen answers' next-token loss added to the DPO loss (RPO, TRL's rpo_alpha;
            1.0 in Pang et al. 2024): keeps the chosen answers likely, which plain DPO lets fall; 0 for plain DPO.
        runs_dir: where an experiment-name reference is looked up; the CLI sets it to the command's --runs_dir.
        **kwargs: the language model's arguments (model_name or model_config, tokenizer, ..., optimizer,
            scheduler); with a checkpoint reference the model and tokenizer are the checkpoint's.
        """
        if reference is None:
            raise ConfigError(
                "DPO needs a reference model: set --model.init_args.reference to the SFT experiment name (e.g. "
                "lm_sft), an SFT checkpoint path, or `initial` for a frozen copy of the starting policy"
            )
        self.reference_path = None if reference == INITIAL else resolve_reference(reference, runs_dir)
        super().__init__(**kwargs)
        self.save_hyperparameters()
        if self.reference_path is not None:  # reload exactly this file, even after newer SFT runs
            self.hparams["reference"] = str(self.reference_path)
        self.reference_model = copy.deepcopy(self.model)
        self.freeze_helpers()
        self.dpo_loss = DPOLoss(beta, label_smoothing)
        self.sft_weight = sft_weight
        self.init_metrics(preference_metrics())

    def step(self, batch: dict[str, Any], stage: str) -> tuple[Tensor, Tensor, Tensor]:
        labels = batch["labels"]
        policy = sequence_logps(self(batch["input_ids"], batch["attention_mask"]), labels)
        with torch.no_grad():
            logits = self.reference_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            reference = sequence_logps(logits, labels)
        policy_chosen, policy_rejected = policy.chunk(2)  # the batch holds all chosen rows, then all rejected
        ref_chosen, ref_rejected = reference.chunk(2)
        loss, chosen, rejected = self.dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
        if self.sft_weight:
            chosen_tokens = (labels[:, 1:] != IGNORE).sum(-1).chunk(2)[0]
            loss = loss - self.sft_weight * policy_chosen.sum() / chosen_tokens.sum().clamp(min=1)
        return loss, chosen, rejected


def load_language_model(path: Path, what: str) -> tuple[Any, nn.Module]:
    """(tokenizer, trainable causal LM with any LoRA adapters merged) of a language-model checkpoint."""
    sft = load_task(path)
    if not isinstance(sft, CausalLMModule):
        raise ConfigError(
            f"{what} '{path}' is a {type(sft).__name__} checkpoint; pass one of a language model "
            "(trainkit.tasks.CausalLMModule)"
        )
    from trainkit.models.lora import merge_lora

    return sft.tokenizer, merge_lora(sft.model).requires_grad_(True)  # LoRA had frozen the base weights


def sequence_logps(logits: Tensor, labels: Tensor) -> Tensor:
    """Summed log-probability of each row's labelled tokens (N,), from (N, T, V) logits and (N, T) labels."""
    logits, labels = logits[:, :-1], labels[:, 1:]
    counted = labels != IGNORE
    picked = torch.gather(logits.float().log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * counted).sum(-1)


def resolve_reference(value: str, runs_dir: str | Path = "runs") -> Path:
    """A checkpoint path as given, or the newest best.ckpt of the experiment `value` under --runs_dir."""
    path = Path(value)
    if path.suffix == ".ckpt" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"reference checkpoint '{value}' does not exist; train the SFT model first")
        return path
    try:
        return Path(str(resolve_ckpt_path("best", runs_dir, value))).resolve()
    except ConfigError as error:
        raise ConfigError(
            f"no SFT checkpoint for reference '{value}' under --runs_dir {runs_dir} ({error}); run "
            "`trainkit fit --config configs/language/sft.yaml` first, or pass a checkpoint path"
        ) from error
