"""The flags a trial's `trainkit fit` gets: its folder is the study's, and later trials skip the one-batch overfit."""

from __future__ import annotations

from trainkit.tune import study as studies
from trainkit.tune.runner import trial_args


def test_trial_flags_name_the_study_folder_and_skip_the_overfit_after_trial_0() -> None:
    settings = studies.StudySettings(name="lr_search", space={}, monitor="val/acc", mode="max", n_trials=3,
                                     experiment="digits", runs_dir="runs", fit_args=["--doctor.overfit_steps", "4"])
    first, later = trial_args(settings, 0, {}), trial_args(settings, 2, {"model.init_args.optimizer.lr": 0.01})
    assert first[first.index("--runs_dir") + 1] == "runs/digits"
    assert first[first.index("--experiment") + 1] == "lr_search"
    assert later[later.index("--run_name") + 1] == "trial_2"
    assert first[:2] == ["--doctor.overfit_steps", "4"]  # trial 0 runs the config's own preflight
    assert later[:4] == ["--doctor.overfit_steps", "0", "--doctor.overfit_steps", "4"]  # the study's own flag wins
