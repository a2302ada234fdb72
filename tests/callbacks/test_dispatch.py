"""Per-batch hooks a callback does not implement are hidden from Lightning's loop; the ones it implements still run."""

from __future__ import annotations

from lightning.pytorch import Callback

from trainkit.callbacks._dispatch import NoProfiler, skip_unused_hooks


class _OnlyBatchEnd(Callback):
    def __init__(self) -> None:
        self.calls = 0

    def on_train_batch_end(self, *args) -> None:  # noqa: ANN002
        self.calls += 1


def test_unimplemented_hooks_are_hidden_and_implemented_ones_kept() -> None:
    callback = _OnlyBatchEnd()
    skip_unused_hooks([callback])
    assert callback.on_train_batch_start is None and callback.on_before_backward is None  # Lightning skips these
    callback.on_train_batch_end(None, None, None, None, 0)
    assert callback.calls == 1
    assert callable(callback.on_fit_start)  # once-per-fit hooks are left alone


def test_no_profiler_context_is_shared_and_reentrant() -> None:
    profiler = NoProfiler()
    with profiler.profile("a"), profiler.profile("b"):
        pass
    assert profiler.profile("a") is profiler.profile("b")
