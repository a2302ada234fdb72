"""Hyperparameter search on Optuna: the search space, the study on a journal file, the trial runner and results."""

from trainkit.tune.space import CategoricalParam, FloatParam, IntParam, SearchSpace

__all__ = ["CategoricalParam", "FloatParam", "IntParam", "SearchSpace"]
