"""Helpers for the streaming tests: generated data on disk, and a callback that records which samples each step saw."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer

PATTERNS = ("horizontal", "vertical", "diagonal", "blob")


def write_pattern_folder(root: Path, per_class: int = 60, size: int = 16, seed: int = 0) -> Path:
    """Class folders of grayscale PNGs: a bar (horizontal, vertical, diagonal) or a blob at a random place, in noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    for cls, name in enumerate(PATTERNS):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            at = rng.integers(3, size - 3)
            shape = [abs(ys - at) <= 1, abs(xs - at) <= 1, abs(xs - ys - at + size // 2) <= 1,
                     (xs - at) ** 2 + (ys - at) ** 2 <= 5][cls]
            image = rng.uniform(0, 0.2, (size, size)) + 0.8 * shape
            Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8), mode="L").save(root / name / f"{index}.png")
    return root


def write_id_table(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """A CSV regression table whose first feature column is the row id, so a batch names its samples."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    y = x @ np.array([1.5, -2.0]) + 0.1 * rng.normal(size=rows)
    lines = ["id,x1,x2,y"] + [f"{i},{a:.6f},{b:.6f},{t:.6f}" for i, ((a, b), t) in enumerate(zip(x, y, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


class RecordIds(Callback):
    """Append (rank, epoch, global step, ids of the batch) per training step to FOLDER/ids-rank<R>.jsonl."""

    def __init__(self, folder: str, delay: float = 0.0) -> None:
        self.folder, self.delay = Path(folder), delay

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:  # noqa: ANN001
        self.folder.mkdir(parents=True, exist_ok=True)
        ids = batch[0][:, 0].round().long().tolist()  # a test probe: the host read is the point here
        record = {"rank": trainer.global_rank, "epoch": trainer.current_epoch, "step": trainer.global_step,
                  "ids": ids}
        with (self.folder / f"ids-rank{trainer.global_rank}.jsonl").open("a") as file:
            file.write(json.dumps(record) + "\n")
        time.sleep(self.delay)  # slows the run down enough for a test to kill it mid-epoch


def read_ids(folder: Path) -> list[dict]:
    """Every record RecordIds wrote under `folder`, all ranks."""
    return [json.loads(line) for path in sorted(folder.glob("ids-rank*.jsonl")) for line in path.read_text().split("\n")
            if line]
