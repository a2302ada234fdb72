"""ExactResume: a resumed fit continues with the very batches and random numbers it would have had uninterrupted.

Lightning restores weights, optimizer, scheduler, scaler, loop counters and callback states, but an ordinary
DataLoader restarts its epoch from the first batch and the global RNGs are not saved. This callback gives the train
loader a seeded ResumableSampler and stores (epoch, batches done, RNG states) in every checkpoint.
"""

from __future__ import annotations

import os
import random
import warnings
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.data import _update_dataloader  # private: how Lightning swaps samplers itself
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

from trainkit.hpc.sampler import ResumableSampler

CHECKPOINT_KEY = "trainkit_resume"


class ExactResume(Callback):
    """Save the train sampler position and the RNG states in checkpoints, and restore both on resume."""

    def __init__(self, enabled: bool = True) -> None:
        """Args:
        enabled: make resumes exact (seeded, position-aware train sampler; RNG states in checkpoints).
        """
        self.enabled = enabled
        """A disabled callback is not handed to the Trainer."""
        self._pending: dict[str, Any] | None = None
        self._patched: tuple[Any, Any] | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        source = trainer.datamodule if trainer.datamodule is not None else pl_module
        original = source.train_dataloader

        def train_dataloader() -> Any:
            return self._resumable(original(), trainer)

        # The DataModule keeps its own train_dataloader; we only post-process what it returns, as Lightning does when
        # it swaps in a DistributedSampler.
        source.train_dataloader = train_dataloader
        self._patched = (source, original)
        # We make the loader resumable ourselves, so Lightning's "dataloader is not resumable" warning is moot.
        warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._patched is not None:
            source, _ = self._patched
            source.__dict__.pop("train_dataloader", None)
            self._patched = None

    def _resumable(self, loader: Any, trainer: Trainer) -> Any:
        if callable(getattr(getattr(loader, "dataset", None), "resume", None)):  # a stream that positions itself
            return self._apply_pending(loader)
        if not isinstance(loader, DataLoader) or isinstance(loader.sampler, ResumableSampler):
            return self._apply_pending(loader)
        plain_batches = type(loader.batch_sampler) is BatchSampler and loader.batch_size is not None
        if type(loader.sampler) not in (RandomSampler, SequentialSampler) or not plain_batches:
            rank_zero_warn(f"trainkit: the train loader's {type(loader.sampler).__name__} is kept as is, so a resume "
                           "in the middle of an epoch restarts that epoch's data order")
            return loader
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = ResumableSampler(
            loader.dataset, num_replicas=max(trainer.world_size, 1), rank=trainer.global_rank,
            shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
        )
        resumable = _update_dataloader(loader, sampler, mode=RunningStage.TRAINING)
        # Worker seeds come from the loader's generator; a private one keeps the global RNG stream untouched by
        # creating iterators, which a resumed run does at different moments than an uninterrupted one.
        resumable.generator = torch.Generator().manual_seed(seed)
        return self._apply_pending(resumable)

    def _apply_pending(self, loader: Any) -> Any:
        sampler = getattr(loader, "sampler", None)
        if self._pending is not None and isinstance(sampler, ResumableSampler):
            pending = self._pending
            # "samples" counts all processes together, so it resumes on another world size; checkpoints older than
            # it were resumed on their own world size.
            samples = pending.get("samples", pending["batches"] * loader.batch_size * sampler.num_replicas)
            saved_by = pending.get("world_size", sampler.num_replicas)
            if saved_by != sampler.num_replicas:
                rank_zero_info(f"trainkit: resuming a checkpoint of {saved_by} processes on {sampler.num_replicas}: "
                               f"epoch {pending['epoch']} continues after its first {samples} samples")
            sampler.resume(pending["epoch"], samples)
        elif self._pending is not None and callable(getattr(getattr(loader, "dataset", None), "resume", None)):
            loader.dataset.resume(self._pending["epoch"], self._pending["batches"])  # e.g. trainkit's ShardStream
        return loader

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        epoch = trainer.current_epoch
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if batches >= trainer.num_training_batches:  # saved at the end of an epoch: resume at the next one
            epoch, batches = epoch + 1, 0
        loader = trainer.train_dataloader
        batch_size = getattr(loader, "batch_size", None) or 0
        checkpoint[CHECKPOINT_KEY] = {"epoch": epoch, "batches": batches, "samples": batches * batch_size *
                                      max(trainer.world_size, 1), "world_size": max(trainer.world_size, 1),
                                      "rng": rng_states()}

    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        self._pending = checkpoint.get(CHECKPOINT_KEY)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        # Restored here, at the first batch after the saved one, because the batch_end save happened right before
        # this point in the uninterrupted run: nothing in between draws random numbers.
        if self._pending is not None:
            set_rng_states(self._pending["rng"])
            self._pending = None


def rng_states() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python RNG states, in types that `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what `rng_states` returned."""
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
