"""The search space checks itself: each bad entry is a ConfigError naming the key and the fix; good ones become the
Optuna distributions, grids and flags the trials get."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from trainkit.errors import ConfigError
from trainkit.tune.space import CategoricalParam, FloatParam, IntParam, SearchSpace, as_flags


def test_a_search_file_becomes_typed_params_and_optuna_distributions(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "model.init_args.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}\n"
        "model.init_args.optimizer.name: {type: categorical, choices: [adamw, lion, sgd]}\n"
        "data.init_args.batch_size: {type: int, low: 32, high: 256, step: 32}\n"
    )
    space = SearchSpace.from_file(path)
    assert space.params == (
        FloatParam("model.init_args.optimizer.lr", 1e-4, 1e-1, log=True),
        CategoricalParam("model.init_args.optimizer.name", ("adamw", "lion", "sgd")),
        IntParam("data.init_args.batch_size", 32, 256, step=32),
    )
    assert space.distributions() == {
        "model.init_args.optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "model.init_args.optimizer.name": CategoricalDistribution(["adamw", "lion", "sgd"]),
        "data.init_args.batch_size": IntDistribution(32, 256, step=32),
    }
    assert SearchSpace.from_dict(space.to_dict()) == space  # what the study stores reads back the same
    assert space.params[2].grid() == [32, 64, 96, 128, 160, 192, 224, 256]
    with pytest.raises(ConfigError, match="--sampler grid needs a finite set for model.init_args.optimizer.lr"):
        space.grid()
    assert FloatParam("a.b", 0.0, 0.2, step=0.1).grid() == [0.0, 0.1, 0.2]


def test_sampled_values_become_fit_flags() -> None:
    assert as_flags({"model.init_args.optimizer.lr": 0.00123, "a.name": "lion", "a.n": 64, "a.on": True}) == [
        "--model.init_args.optimizer.lr=0.00123", "--a.name=lion", "--a.n=64", "--a.on=true"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "float", "low": 0.1, "high": 0.01}, "lr: low 0.1 > high 0.01; swap them"),
    ({"type": "float", "low": 0.0, "high": 0.1, "log": True}, "lr: log: true needs low > 0 (got low 0)"),
    ({"type": "int", "low": -4, "high": 8, "log": True}, "lr: log: true needs low > 0"),
    ({"type": "categorical", "choices": []}, "lr: choices must be a non-empty list"),
    ({"type": "categorical", "choices": [1, 1]}, "repeat a value"),
    ({"type": "float", "low": "1e-4", "high": 0.1}, "low '1e-4' is not a number (write 1.0e-4"),
    ({"type": "int", "low": 1.5, "high": 8}, "low 1.5 is not an integer"),
    ({"type": "uniform", "low": 0, "high": 1}, "type 'uniform' is not known; use float, int or categorical"),
    ({"type": "float", "low": 0.0, "hi": 1.0}, "lr: hi is not an option of type float"),
    ({"type": "float", "low": 0.0}, "lr: type float needs high"),
    ({"type": "float", "low": 0.1, "high": 1.0, "step": 0.1, "log": True}, "step and log: true cannot be combined"),
    ([1, 2], "expected a mapping with a type"),
])
def test_a_bad_entry_names_the_key_and_the_fix(spec: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        SearchSpace.from_dict({"lr": spec})
    assert message in str(raised.value)


def test_a_missing_or_empty_search_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; pass --search PATH"):
        SearchSpace.from_file(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="empty.yaml: expected a mapping of dotted config keys"):
        SearchSpace.from_file(tmp_path / "empty.yaml")
