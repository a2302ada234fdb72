"""The shard folder's manifest: a broken one is named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainkit.data.shards import MANIFEST, read_manifest
from trainkit.errors import ConfigError


def test_a_broken_manifest_is_named_with_its_fix(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text('{"format": "trainkit-shards-1", "splits": {"tr')  # cut short
    with pytest.raises(ConfigError, match=rf"^{tmp_path / MANIFEST} is not valid JSON \(.*line 1 column \d+.*\); "
                                          "remove the folder and write the shards again"):
        read_manifest(tmp_path)
