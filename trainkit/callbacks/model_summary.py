"""Lightning's model summary, less its FLOPs column and "Total FLOPs: 0" line when nothing was counted."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table

log = logging.getLogger("lightning.pytorch.callbacks.model_summary")  # where Lightning's own summary goes


class ModelSummaryWithoutZeroFlops(ModelSummary):
    """The layer table and parameter counts; FLOPs only when counted (they need the model's example_input_array,
    which trainkit's tasks do not set, so Lightning's summary would always say 0)."""

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        if total_flops:
            ModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                   total_training_modes, total_flops, **summarize_kwargs)
            return
        columns = [column for column in summary_data if column[0] != "FLOPs"]
        table = _format_summary_table(total_parameters, trainable_parameters, model_size, total_training_modes, 0,
                                      *columns)
        log.info("\n" + "\n".join(line for line in table.splitlines() if "Total Flops" not in line))
