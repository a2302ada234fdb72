"""The parser behind `trainkit fit/validate/test/predict`: help a person can read, and "did you mean" on a typo.

LightningCLI's help starts with 45 lines of Trainer flags and lists every nn.Module subclass after any argument
typed as one (600+ lines for `--data.help X`); here trainkit's own groups come first, the Trainer's after them, and
a list of known subclasses is shown only when it is short enough to read.
"""

from __future__ import annotations

import re
from typing import Any

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.cli import LightningArgumentParser

from trainkit.errors import did_you_mean

MAX_SUBCLASSES_SHOWN = 8
"""A longer "known subclasses" list is every nn.Module in torch: replaced by how to name one."""


class TrainkitHelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with "known subclasses" only when there are a few."""

    def _get_help_string(self, action: Any) -> str:
        text = super()._get_help_string(action)
        match = re.search(r", known subclasses: ([^)]*)", text)
        if match and match.group(1).count(",") >= MAX_SUBCLASSES_SHOWN:
            text = text.replace(match.group(0), ", any subclass: class_path and init_args, or its class name")
        return text


class TrainkitArgumentParser(LightningArgumentParser):
    """LightningArgumentParser with trainkit's help formatter, the Trainer's flags last, and spelling suggestions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", TrainkitHelpFormatter)
        super().__init__(*args, **kwargs)

    def format_help(self) -> str:
        trainer = [group for group in self._action_groups if _is_trainer_group(group)]
        self._action_groups = [group for group in self._action_groups if group not in trainer] + trainer
        if trainer and self.usage is None:  # argparse would list all 200 flags in the usage line
            self.usage = ("%(prog)s [-c CONFIG.yaml] [--KEY VALUE ...]\n  trainkit's groups first, the Trainer's "
                          "flags last; --model.help CLASS and\n  --data.help CLASS list one class's options")
        return super().format_help()

    def error(self, message: str, ex: Exception | None = None) -> Any:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            flags = [arg for arg in unknown.group(1).split() if arg.startswith("--")]
            known = _option_strings(self)
            hints = [did_you_mean(flag.split("=")[0], known, n=2).strip() for flag in flags]
            hint = " ".join(f"{flag.split('=')[0]}: {h}" for flag, h in zip(flags, hints, strict=True) if h)
            if hint:
                message = f"{message} ({hint})"
        return super().error(message, ex)


def _is_trainer_group(group: Any) -> bool:
    """The group of Lightning's Trainer flags (`--trainer.*`)."""
    return any(option.startswith("--trainer.") for action in group._group_actions
               for option in getattr(action, "option_strings", []))


def _option_strings(parser: Any) -> list[str]:
    """Every `--flag` of the parser and of its subcommands' parsers."""
    options = [option for option in parser._option_string_actions if option.startswith("--")]
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        for subparser in choices.values() if isinstance(choices, dict) else []:
            if hasattr(subparser, "_option_string_actions"):
                options += _option_strings(subparser)
    return options
