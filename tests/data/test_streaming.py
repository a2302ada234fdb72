"""StreamingDataModule over `trainkit shard` output: the planned order, the rank x worker split, exact resume (real
DataLoader workers, real DDP processes, a real SIGKILL), accuracy against the map-style run, and bad inputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import DOCTOR_OFF, REPO
from tests.data._streams import read_ids, write_id_table, write_pattern_folder
from tests.ddp_fits import ddp_fits
from tests.hpc._runs import ForkedRun, kill_when_saved, last_metrics, weights
from trainkit.commands.shard import shard_datamodule
from trainkit.data import CSVDataModule, ImageFolderDataModule, StreamingDataModule
from trainkit.data.shard_stream import batches_per_rank, epoch_order, rank_batches
from trainkit.errors import ConfigError


def _id_shards(tmp: Path, shard_kb: int = 2) -> Path:
    """The id table's splits as shards of a few samples each (many shards, so shard order matters)."""
    data = CSVDataModule(str(write_id_table(tmp / "ids.csv")), target_columns=["y"], standardize_features=False)
    shard_datamodule(data, tmp / "shards", shard_bytes=shard_kb << 10)
    return tmp / "shards"


def _ids(batch: tuple[torch.Tensor, torch.Tensor]) -> list[int]:
    return batch[0][:, 0].round().long().tolist()


def _epoch_ids(data: StreamingDataModule, rank: int = 0, world: int = 1) -> list[list[int]]:
    stream = data.streams["train"]
    stream.distribute(rank, world)
    return [_ids(batch) for batch in data.train_dataloader()]


def test_epoch_order_is_a_seeded_permutation_that_changes_each_epoch() -> None:
    counts = [7, 3, 9, 5]
    orders = [epoch_order(counts, epoch, seed=1, shuffle=True, buffer=6) for epoch in (0, 0, 1)]
    assert sorted(orders[0].tolist()) == list(range(24))
    assert orders[0].tolist() == orders[1].tolist()  # pure function of (seed, epoch)
    assert orders[0].tolist() != orders[2].tolist()
    assert epoch_order(counts, 3, seed=1, shuffle=False, buffer=6).tolist() == list(range(24))


@pytest.mark.parametrize(("total", "world", "batch_size"), [(101, 2, 8), (96, 4, 8), (17, 3, 4), (64, 2, 32)])
def test_rank_blocks_cover_every_sample_once_in_equal_batch_counts(total: int, world: int, batch_size: int) -> None:
    order = np.random.default_rng(0).permutation(total)
    per_rank = [rank_batches(order, rank, world, batch_size) for rank in range(world)]
    assert {len(batches) for batches in per_rank} == {batches_per_rank(total, world, batch_size)}  # DDP lockstep
    seen = np.concatenate([b for batches in per_rank for b in batches])
    assert sorted(seen.tolist()) == list(range(total))
    assert all(0 < len(b) <= batch_size for batches in per_rank for b in batches)


def test_workers_and_ranks_see_each_sample_once_and_resume_mid_epoch(tmp_path: Path) -> None:
    folder = _id_shards(tmp_path)
    data = StreamingDataModule(str(folder), batch_size=8, shuffle_buffer=16, seed=3, num_workers=2)
    data.setup("fit")
    total = data.manifest["splits"]["train"]["samples"]
    assert len(data.manifest["splits"]["train"]["shards"]) > 4
    for epoch in (0, 1):
        data.streams["train"].set_epoch(epoch)
        ranks = [_epoch_ids(data, rank, 2) for rank in range(2)]
        assert len(ranks[0]) == len(ranks[1])
        counts = Counter(i for batches in ranks for batch in batches for i in batch)
        assert len(counts) == total and set(counts.values()) == {1}, f"epoch {epoch}: a sample dropped or doubled"
    data.streams["train"].set_epoch(1)
    whole = _epoch_ids(data)
    data.streams["train"].resume(1, 5)
    assert _epoch_ids(data) == whole[5:]  # starts at batch 5: nothing replayed, nothing skipped
    data.streams["train"].set_epoch(2)
    assert len(_epoch_ids(data)) == len(whole)  # the skip belonged to the resumed epoch only


def test_bad_shard_folders_fail_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no manifest.json in it.*trainkit shard --config"):
        StreamingDataModule(str(tmp_path / "empty")).setup("fit")
    folder = _id_shards(tmp_path)
    damaged = folder / "train-000002.tar"
    data = bytearray(damaged.read_bytes())
    data[700] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="checksum mismatch in shard '.*train-000002.tar'"):
        StreamingDataModule(str(folder)).setup("fit")
    (folder / "test-000000.tar").unlink()
    with pytest.raises(ConfigError, match="test-000000.tar' listed in the manifest is missing"):
        StreamingDataModule(str(folder)).setup("test")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU JPEG decoding needs CUDA")
def test_gpu_jpeg_decode_matches_cpu_decode_closely(tmp_path: Path) -> None:
    from PIL import Image

    root = write_pattern_folder(tmp_path / "png", per_class=8, size=32)
    for path in list(root.rglob("*.png")):
        Image.open(path).convert("RGB").save(path.with_suffix(".jpg"), quality=95)
        path.unlink()
    shard_datamodule(ImageFolderDataModule(str(root), image_size=32, num_workers=0), tmp_path / "jpg")
    batches = {}
    for gpu in (False, True):
        data = StreamingDataModule(str(tmp_path / "jpg"), batch_size=8, gpu_decode=gpu, num_workers=0)
        data.setup("test")
        batch = next(iter(data.test_dataloader()))
        batches[gpu] = data.on_before_batch_transfer(batch, 0)[0].cpu() if gpu else batch[0]
    assert (batches[True] - batches[False]).abs().mean() < 0.05  # nvJPEG and libjpeg differ by rounding only


def _fit_args(config: Path, run_name: str, *extra: str) -> list[str]:
    return ["fit", "--config", str(config), "--run_name", run_name, "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--test_after_fit", "false", *DOCTOR_OFF, *extra]


def _regression_config(tmp: Path, shards: Path, workers: int, epochs: int) -> Path:
    """The diabetes MLP set-up on the id table's shards (3 features: id, x1, x2)."""
    config = yaml.safe_load((REPO / "configs/regression/diabetes.yaml").read_text())
    config["experiment"] = "ids"
    config["trainer"] |= {"max_epochs": epochs, "log_every_n_steps": 1}
    config["model"]["init_args"] |= {"in_features": 3, "hidden_sizes": [16], "standardize_targets": False}
    config["data"] = {"class_path": "trainkit.data.StreamingDataModule",
                      "init_args": {"root": str(shards), "batch_size": 8, "shuffle_buffer": 16,
                                    "num_workers": workers}}
    path = tmp / "ids.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _recorder(folder: Path, delay: float = 0.0) -> list[str]:
    spec = {"class_path": "tests.data._streams.RecordIds", "init_args": {"folder": str(folder), "delay": delay}}
    return ["--trainer.callbacks+", yaml.safe_dump(spec, default_flow_style=True).strip()]


@pytest.mark.slow
@pytest.mark.xdist_group("ddp_fits")
def test_two_ddp_ranks_with_two_workers_each_see_every_sample_once_per_epoch() -> None:
    out, _ = ddp_fits()  # the id shards' regression fit, 2 workers a rank, on 2 processes (tests/ddp_fits.py)
    total = yaml.safe_load((out / "streaming/shards/manifest.json").read_text())["splits"]["train"]["samples"]
    records = read_ids(out / "streaming/ids")
    orders = []
    for epoch in (0, 1):
        steps = [r for r in records if r["epoch"] == epoch]
        assert Counter(r["rank"] for r in steps) == {0: len(steps) // 2, 1: len(steps) // 2}
        counts = Counter(i for r in steps for i in r["ids"])
        assert len(counts) == total and set(counts.values()) == {1}, f"epoch {epoch}: a sample dropped or doubled"
        orders.append([i for r in sorted(steps, key=lambda r: (r["rank"], r["step"])) for i in r["ids"]])
    assert orders[0] != orders[1]  # reshuffled each epoch


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_sees_the_same_samples_and_ends_bitwise_equal(workdir: Path, trainkit) -> None:  # noqa: ANN001
    shards = _id_shards(workdir)
    config = _regression_config(workdir, shards, workers=2, epochs=2)
    every = ["--checkpoint.every_n_train_steps", "5"]
    killed = ForkedRun(*_fit_args(config, "killed", *every, *_recorder(workdir / "killed", delay=0.2)), cwd=workdir)
    saved = kill_when_saved(killed, workdir / "runs" / "ids" / "killed" / "checkpoints" / "last.ckpt")
    resume_step = saved["global_step"]
    assert saved["trainkit_resume"]["batches"] > 0, "the checkpoint to resume from should be mid-epoch"

    # Only the killed run needs a process (a fork); the resume and the reference go in-process (an interpreter is ~7 s
    # of CPU).
    torch.set_num_threads(1)  # as in the killed process (OMP_NUM_THREADS=1)
    assert trainkit(*_fit_args(config, "killed", *_recorder(workdir / "resumed"), *every, "--ckpt_path", "last")) == 0
    assert trainkit(*_fit_args(config, "uninterrupted", *every, *_recorder(workdir / "ref"))) == 0
    after = {r["step"]: r["ids"] for r in read_ids(workdir / "resumed")}
    uninterrupted = {r["step"]: r["ids"] for r in read_ids(workdir / "ref")}
    assert min(after) == resume_step
    assert after == {step: ids for step, ids in uninterrupted.items() if step >= resume_step}
    runs = workdir / "runs" / "ids"
    ours, theirs = (weights(runs / name / "checkpoints" / "last.ckpt") for name in ("killed", "uninterrupted"))
    different = [name for name in ours if not torch.equal(ours[name], theirs[name])]
    assert not different, f"weights differ after resume: {different[:5]}"
    assert last_metrics(runs / "killed")["val/loss"] == last_metrics(runs / "uninterrupted")["val/loss"]


@pytest.mark.slow
def test_training_from_shards_matches_the_image_folder_run(workdir: Path, trainkit) -> None:  # noqa: ANN001
    root = write_pattern_folder(workdir / "patterns")
    config = {
        "experiment": "patterns", "seed_everything": 0, "monitor": "val/acc", "mode": "max", "test_after_fit": True,
        "trainer": {"max_epochs": 10, "accelerator": "cpu", "devices": 1, "log_every_n_steps": 2,
                    "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"class_path": "trainkit.tasks.ClassificationModule",
                  "init_args": {"backbone": "test_resnet", "num_classes": 4, "in_chans": 1,
                                "optimizer": {"name": "adamw", "lr": 0.01}}},
        "data": {"class_path": "trainkit.data.ImageFolderDataModule",
                 "init_args": {"root": str(root), "image_size": 16, "grayscale": True, "batch_size": 16,
                               "val_fraction": 0.2, "test_fraction": 0.25, "num_workers": 0}},
    }
    folder_config = workdir / "folder.yaml"
    folder_config.write_text(yaml.safe_dump(config))
    assert trainkit("shard", "--config", folder_config, "--out", workdir / "shards") == 0
    assert trainkit("fit", "--config", folder_config, "--run_name", "folder") == 0
    config["data"] = {"class_path": "trainkit.data.StreamingDataModule",
                      "init_args": {"root": str(workdir / "shards"), "batch_size": 16, "num_workers": 0}}
    stream_config = workdir / "stream.yaml"
    stream_config.write_text(yaml.safe_dump(config))
    assert trainkit("fit", "--config", stream_config, "--run_name", "stream") == 0

    # The streamed test split is the folder's, pixel for pixel and label for label (stored PNGs, same transform).
    folder_data = ImageFolderDataModule(str(root), image_size=16, grayscale=True, val_fraction=0.2,
                                        test_fraction=0.25, num_workers=0)
    folder_data.setup("test")
    stream_data = StreamingDataModule(str(workdir / "shards"), batch_size=16, num_workers=0)
    stream_data.setup("test")
    expected = [folder_data.splits["test"][i] for i in range(len(folder_data.splits["test"]))]
    streamed = [sample for x, y in stream_data.test_dataloader() for sample in zip(x, y, strict=True)]
    assert len(streamed) == len(expected)
    assert all(torch.equal(a[0], b[0]) and int(a[1]) == int(b[1]) for a, b in zip(expected, streamed, strict=True))

    runs = workdir / "runs" / "patterns"
    folder_acc, stream_acc = (last_metrics(runs / name)["test/acc"] for name in ("folder", "stream"))
    assert folder_acc > 0.9, "the map-style run should learn these patterns"
    assert abs(stream_acc - folder_acc) <= 0.005, (folder_acc, stream_acc)
