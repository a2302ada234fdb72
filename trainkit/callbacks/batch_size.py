"""Batch-size search and out-of-memory recovery that keep the configured effective batch (and so the LR and schedule).

Lightning's BatchSizeFinder works on one device and changes the effective batch; this one searches on every process
(the smallest fit wins), and trades per-device batch for gradient accumulation so nothing else about the run moves.
"""

from __future__ import annotations

import gc
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from lightning_utilities.core.apply_func import apply_to_collection
from torch import Tensor

from trainkit.errors import ConfigError


class BatchTooLargeError(RuntimeError):
    """Out of memory even at the smallest per-device batch allowed."""


class BatchSize(Callback):
    """`search`: before training, find the largest per-device batch that fits (growing from the configured one, with
    a memory margin on CUDA) among those that divide the effective batch, then set gradient accumulation to keep it.
    `oom_recovery`: on an out-of-memory error during fit, restart from the last checkpoint with half the per-device
    batch and twice the accumulation (same effective batch, same schedule), down to `min_batch_size`."""

    def __init__(self, search: bool = False, margin: float = 0.1, oom_recovery: bool = False,
                 min_batch_size: int = 1) -> None:
        """Args:
        search: search the per-device batch when fit starts (one forward and backward pass per size tried).
        margin: fraction of the device's memory left free by the chosen batch (CUDA; optimizer state not yet
            allocated is counted as two copies of the weights).
        oom_recovery: restart a fit that runs out of memory with half the per-device batch (needs the data's
            batch_size attribute; resumes from the run's last checkpoint when there is one).
        min_batch_size: the smallest per-device batch tried, by the search and the recovery.
        """
        if not 0 <= margin < 1:
            raise ConfigError(f"batch_size.margin={margin} must be in [0, 1); e.g. --batch_size.margin 0.1")
        if min_batch_size < 1:
            raise ConfigError(f"batch_size.min_batch_size={min_batch_size} must be >= 1")
        self.search = search
        self.margin = margin
        self.oom_recovery = oom_recovery
        self.min_batch_size = min_batch_size
        self.chosen: int | None = None
        """The per-device batch the search chose."""

    @property
    def enabled(self) -> bool:
        """Whether either option is on; a disabled callback is not handed to the Trainer."""
        return self.search or self.oom_recovery

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.search or trainer.ckpt_path is not None:  # a resumed run keeps the batch it was trained with
            return
        data = _datamodule(trainer, "batch_size.search")
        batch, accumulate = int(data.batch_size), trainer.accumulate_grad_batches
        effective = batch * accumulate
        sample = next(iter(trainer.fit_loop._data_source.dataloader()))
        sample = pl_module._apply_batch_transfer_handler(sample)
        sizes = [b for b in range(self.min_batch_size, effective + 1) if effective % b == 0]
        fits, failed = self._largest_fitting(trainer, pl_module, sample, sizes, start=batch)
        if trainer.world_size > 1:  # every process searched; the smallest fit is the one all can use
            fits = int(trainer.strategy.reduce(torch.tensor(fits, device=pl_module.device), reduce_op="min"))
        if fits <= 0:
            raise BatchTooLargeError(
                f"out of memory at every per-device batch from {self.min_batch_size}; try --speed.grad_checkpointing "
                "true, --trainer.precision bf16-mixed or a smaller model")
        self.chosen = fits
        _set_batch(trainer, data, fits, effective // fits)
        over = f" ({failed} ran out of memory)" if failed else f" (the effective batch {effective} is the most)"
        rank_zero_info(f"trainkit: batch-size search: per-device batch {fits}{over}; effective batch {effective} "
                       f"kept with --trainer.accumulate_grad_batches {effective // fits}")

    def _largest_fitting(self, trainer: Trainer, module: LightningModule, sample: Any, sizes: list[int],
                         start: int) -> tuple[int, int | None]:
        """(largest of `sizes` that fits or 0, the size that failed): double from `start` while it fits, else halve."""
        def at_most(limit: int) -> int | None:
            return max((b for b in sizes if b <= limit), default=None)

        size, best, failed = at_most(start) or sizes[0], 0, None
        saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
        try:
            if self._fits(trainer, module, sample, size):
                best = size
                while True:
                    bigger = min((b for b in sizes if b >= 2 * best), default=None)
                    bigger = bigger or (sizes[-1] if sizes[-1] > best else None)  # up to the effective batch
                    if bigger is None:
                        break
                    if not self._fits(trainer, module, sample, bigger):
                        failed = bigger
                        break
                    best = bigger
            else:
                failed = size
                while (smaller := at_most(failed // 2)) is not None:
                    if self._fits(trainer, module, sample, smaller):
                        best = smaller
                        break
                    failed = smaller
        finally:
            module.load_state_dict(saved)  # the trial passes moved BatchNorm statistics: put them back
            module.zero_grad(set_to_none=True)
        return best, failed

    def _fits(self, trainer: Trainer, module: LightningModule, sample: Any, size: int) -> bool:
        """One forward and backward pass at `size`; on CUDA the peak must leave `margin` of the memory free."""
        batch = _resize(sample, size)
        cuda = module.device.type == "cuda"
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(module.device)
        try:
            with trainer.precision_plugin.forward_context():
                loss = module.step(batch, "train")[0] if hasattr(module, "step") else module.training_step(batch, 0)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            loss.backward()
            if cuda:
                peak = torch.cuda.max_memory_allocated(module.device)
                if not any(opt.state for opt in trainer.optimizers):  # Adam's moments come with the first step
                    peak += 2 * sum(p.numel() * p.element_size() for p in module.parameters() if p.requires_grad)
                total = torch.cuda.mem_get_info(module.device)[1]
                return peak <= (1 - self.margin) * total
            return True
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise
            return False
        finally:
            module.zero_grad(set_to_none=True)
            batch = loss = None
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA out-of-memory error, or the CPU allocator's (a plain RuntimeError: "DefaultCPUAllocator: can't
    allocate memory")."""
    return isinstance(error, torch.OutOfMemoryError) or "DefaultCPUAllocator: can't allocate memory" in str(error)


def fit_with_oom_recovery(trainer: Trainer, **fit_kwargs: Any) -> None:
    """`trainer.fit(...)`, restarted with half the per-device batch after an out-of-memory error when the run's
    BatchSize callback has `oom_recovery` on."""
    recovery = next((c for c in trainer.callbacks if isinstance(c, BatchSize) and c.oom_recovery), None)
    if recovery is None:
        trainer.fit(**fit_kwargs)
        return
    data = _datamodule(trainer, "batch_size.oom_recovery", fit_kwargs.get("datamodule"))
    while True:
        try:
            trainer.fit(**fit_kwargs)
            return
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise
            error = None  # leave the except block first: its traceback holds the tensors that filled the memory
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        batch, accumulate = int(data.batch_size), trainer.accumulate_grad_batches
        if batch // 2 < recovery.min_batch_size or batch % 2:
            raise BatchTooLargeError(
                f"out of memory at per-device batch {batch}, and half of it is below the floor "
                f"(--batch_size.min_batch_size {recovery.min_batch_size}) or not whole; try "
                "--speed.grad_checkpointing true or --trainer.precision bf16-mixed")
        _set_batch(trainer, data, batch // 2, accumulate * 2)
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") or None
        fit_kwargs["ckpt_path"] = last or fit_kwargs.get("ckpt_path")
        where = f"from {last}" if last else "from the start (no checkpoint yet)"
        rank_zero_info(f"trainkit: out of memory at per-device batch {batch}; restarting {where} with batch "
                       f"{batch // 2} and --trainer.accumulate_grad_batches {accumulate * 2} (same effective batch)")


def _datamodule(trainer: Trainer, option: str, datamodule: Any = None) -> Any:
    data = datamodule if datamodule is not None else trainer.datamodule
    if not isinstance(getattr(data, "batch_size", None), int):
        raise ConfigError(f"{option} needs a DataModule with an integer batch_size attribute; "
                          f"{type(data).__name__} has none; set --{option} false")
    return data


def _set_batch(trainer: Trainer, data: Any, batch: int, accumulate: int) -> None:
    data.batch_size = batch
    trainer.accumulate_grad_batches = accumulate
    trainer.fit_loop._combined_loader = None  # rebuilt with the new batch size when the loop starts


def _resize(batch: Any, size: int) -> Any:
    """The sample batch repeated or cut to `size` along its first dimension."""
    def resize(tensor: Tensor) -> Tensor:
        if tensor.dim() == 0:
            return tensor
        repeats = -(-size // len(tensor))
        return tensor.repeat(repeats, *([1] * (tensor.dim() - 1)))[:size]

    return apply_to_collection(batch, Tensor, resize)
