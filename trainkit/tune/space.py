"""The search space: a YAML file keyed by the dotted keys of `trainkit fit` flags, read into typed parameters that
check themselves and turn into Optuna distributions and flags."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trainkit.errors import ConfigError

Choice = str | int | float | bool | None


@dataclass(frozen=True)
class FloatParam:
    """A real number in [low, high], sampled on a log scale when `log`, on a grid of `step` when given."""

    key: str
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def __post_init__(self) -> None:
        _check_range(self.key, self.low, self.high, self.log, self.step)

    def distribution(self) -> Any:
        """The Optuna distribution."""
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self) -> list[float] | None:
        """Every value a grid search visits, or None when the range is continuous."""
        if self.step is None:
            return None
        count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        return [round(self.low + i * self.step, 12) for i in range(count)]


@dataclass(frozen=True)
class IntParam:
    """An integer in [low, high], every `step`-th one, or on a log scale when `log`."""

    key: str
    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        for name in ("low", "high", "step"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{self.key}: {name} {value!r} is not an integer; use type: float for real numbers")
        _check_range(self.key, self.low, self.high, self.log, self.step)
        if self.log and self.step != 1:
            raise ConfigError(f"{self.key}: log: true needs step: 1 (Optuna samples log-scaled integers one by one)")

    def distribution(self) -> Any:
        """The Optuna distribution."""
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid(self) -> list[int]:
        """Every value a grid search visits."""
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class CategoricalParam:
    """One of a list of choices (strings, numbers, booleans)."""

    key: str
    choices: tuple[Choice, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.choices, tuple | list) or not self.choices:
            raise ConfigError(f"{self.key}: choices must be a non-empty list, e.g. choices: [adamw, sgd]")
        bad = [c for c in self.choices if not isinstance(c, Choice)]
        if bad:
            raise ConfigError(f"{self.key}: choice {bad[0]!r} is not a string, number or boolean")
        if len(set(map(repr, self.choices))) < len(self.choices):
            raise ConfigError(f"{self.key}: choices {list(self.choices)} repeat a value; list each once")

    def distribution(self) -> Any:
        """The Optuna distribution."""
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.choices))

    def grid(self) -> list[Choice]:
        """Every value a grid search visits."""
        return list(self.choices)


Param = FloatParam | IntParam | CategoricalParam
_TYPES: dict[str, type] = {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam}


def _check_range(key: str, low: float, high: float, log: bool, step: float | None) -> None:
    if low > high:
        raise ConfigError(f"{key}: low {low:g} > high {high:g}; swap them")
    if log and low <= 0:
        raise ConfigError(f"{key}: log: true needs low > 0 (got low {low:g}); raise low or drop log")
    if step is not None and step <= 0:
        raise ConfigError(f"{key}: step {step:g} must be > 0")
    if step is not None and log:
        raise ConfigError(f"{key}: step and log: true cannot be combined; drop one")


def parse_param(key: str, spec: Any) -> Param:
    """One entry of the search file: `{type: float, low: 1e-4, high: 1e-1, log: true}`."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{key}: expected a mapping with a type (float, int or categorical), got {spec!r}")
    kind = spec["type"]
    if kind not in _TYPES:
        raise ConfigError(f"{key}: type {kind!r} is not known; use float, int or categorical")
    cls = _TYPES[kind]
    fields = {f.name for f in dataclasses.fields(cls)} - {"key"}
    unknown = sorted(set(spec) - fields - {"type"})
    if unknown:
        allowed = ", ".join(sorted(fields))
        raise ConfigError(f"{key}: {', '.join(unknown)} is not an option of type {kind}; use {allowed}")
    values = {k: v for k, v in spec.items() if k != "type"}
    missing = sorted(f.name for f in dataclasses.fields(cls) if f.name in fields and f.name not in values
                     and f.default is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{key}: type {kind} needs {' and '.join(missing)}")
    if kind == "float":
        for name in ("low", "high", "step"):
            if name in values and values[name] is not None:
                if not isinstance(values[name], int | float) or isinstance(values[name], bool):
                    raise ConfigError(f"{key}: {name} {values[name]!r} is not a number (write 1.0e-4, not 1e-4 "
                                      "without the dot, which YAML reads as a string)")
                values[name] = float(values[name])
    if kind == "categorical" and isinstance(values.get("choices"), list):
        values["choices"] = tuple(values["choices"])
    return cls(key=key, **values)


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of a search, in file order."""

    params: tuple[Param, ...]

    @classmethod
    def from_file(cls, path: str | Path) -> SearchSpace:
        """Read and check a search file; a ConfigError names the file and the bad entry."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"search file {path} does not exist; pass --search PATH to a YAML file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"search file {path} is not valid YAML: {' '.join(str(error).split())}") from error
        try:
            return cls.from_dict(data)
        except ConfigError as error:
            raise ConfigError(f"search file {path}: {error}") from error

    @classmethod
    def from_dict(cls, data: Any) -> SearchSpace:
        """Check a mapping of dotted key -> distribution."""
        if not isinstance(data, dict) or not data:
            raise ConfigError("expected a mapping of dotted config keys to distributions, e.g. "
                              "model.init_args.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}")
        return cls(tuple(parse_param(str(key), spec) for key, spec in data.items()))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The file's mapping back (stored with the study to recognise a changed search)."""
        out: dict[str, dict[str, Any]] = {}
        for param in self.params:
            kind = next(name for name, cls in _TYPES.items() if isinstance(param, cls))
            fields = dataclasses.asdict(param)
            fields.pop("key")
            if "choices" in fields:
                fields["choices"] = list(fields["choices"])
            out[param.key] = {"type": kind, **fields}
        return out

    def check_keys(self, config: Any) -> None:
        """Fail on a key the parsed `trainkit fit` config does not have (a typo would otherwise tune nothing)."""
        for param in self.params:
            if param.key not in config:
                parent = param.key.rpartition(".")[0]
                known = sorted(config[parent].keys()) if parent and parent in config and hasattr(
                    config[parent], "keys") else []
                hint = f"; {parent} has: {', '.join(known)}" if known else (
                    "; `trainkit fit --config X.yaml --print_config` lists the keys")
                raise ConfigError(f"{param.key} is not a key of the config{hint}")

    def values_in(self, config: Any) -> dict[str, Any] | None:
        """The config's own value of every key, or None when one lies outside its range (then no baseline)."""
        values = {param.key: config[param.key] for param in self.params}
        for param in self.params:
            value = values[param.key]
            if isinstance(param, CategoricalParam):
                inside = value in param.choices
            else:
                inside = isinstance(value, int | float) and not isinstance(value, bool) and (
                    param.low <= value <= param.high)
            if not inside:
                return None
        return values

    def distributions(self) -> dict[str, Any]:
        """Key -> Optuna distribution."""
        return {param.key: param.distribution() for param in self.params}

    def grid(self) -> dict[str, list[Choice]]:
        """Key -> values for Optuna's GridSampler; a ConfigError for a continuous float."""
        grid: dict[str, list[Choice]] = {}
        for param in self.params:
            values = param.grid()
            if values is None:
                raise ConfigError(f"--sampler grid needs a finite set for {param.key}: give it a step, or make it "
                                  "categorical")
            grid[param.key] = values
        return grid


def as_flags(params: dict[str, Any]) -> list[str]:
    """Sampled values as `trainkit fit` flags: `--model.init_args.optimizer.lr=0.00123`."""
    flags = []
    for key, value in params.items():
        text = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value) if (
            isinstance(value, float)) else str(value)
        flags.append(f"--{key}={text}")
    return flags
