"""Which exceptions the distributed guard reads as a lost peer (the multi-process behaviour is in test_multihost.py)."""

from __future__ import annotations

import pytest

from trainkit.hpc.distributed_guard import _is_collective_failure


@pytest.mark.parametrize("message", [
    "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.0.0.2]:1234",
    "Application timeout caused pair closure",  # gloo, a frozen peer on a CI machine
    "Timed out waiting 30000ms for recv operation to complete",
    "NCCL watchdog thread terminated with exception",
])
def test_a_collective_that_lost_its_peer_is_recognised(message: str) -> None:
    assert _is_collective_failure(RuntimeError(message))


@pytest.mark.parametrize("exception", [RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
                                       ValueError("Application timeout caused pair closure")])
def test_other_errors_are_not(exception: BaseException) -> None:
    assert not _is_collective_failure(exception)
