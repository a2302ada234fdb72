"""The recipe presets in configs/optim/ compose with an experiment config, set what they say, and train."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, TINY_DIGITS

RECIPES = sorted((REPO / "configs" / "optim").glob("*.yaml"))


def test_the_three_standard_recipes_exist() -> None:
    assert {p.stem for p in RECIPES} >= {"adamw_warmup_cosine", "sgd_onecycle", "step_decay"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_composes_and_trains(recipe: Path, workdir: Path, trainkit) -> None:  # noqa: ANN001
    from trainkit.cli import TrainkitCLI

    wanted = yaml.safe_load(recipe.read_text())["model"]["init_args"]
    cli = TrainkitCLI(args=[*TINY_DIGITS, "--config", str(recipe), "--trainer.logger", "false"], run=False)
    assert cli.model.optimizer_config.name == wanted["optimizer"]["name"]
    assert cli.model.optimizer_config.lr == wanted["optimizer"]["lr"]
    assert cli.model.scheduler_config.name == wanted["scheduler"]["name"]
    assert cli.model.net.num_classes == 10  # the experiment's own settings are kept
    two_epochs = ["--trainer.max_epochs", "2"]  # step_decay warms up for a whole epoch
    assert trainkit("fit", *TINY_DIGITS, "--config", str(recipe), *two_epochs, "--test_after_fit", "false") == 0
    assert (workdir / "runs/digits/version_0/checkpoints/last.ckpt").is_file()
