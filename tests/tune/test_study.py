"""The study on disk: settings that refuse a changed search, trial locks that die with their holder, results."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainkit.errors import ConfigError
from trainkit.tune import study as studies
from trainkit.tune.results import report

SPACE = {"model.init_args.optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}


def _settings(**changes: object) -> studies.StudySettings:
    return studies.StudySettings(**{"name": "s", "space": SPACE, "monitor": "val/acc", "mode": "max",
                                    "n_trials": 3, "experiment": "digits"} | changes)  # type: ignore[arg-type]


def test_a_study_with_finished_trials_refuses_another_search_but_may_grow(tmp_path: Path) -> None:
    folder = tmp_path / "tune_s"
    studies.write_settings(folder, _settings())
    study = studies.load(folder, _settings())
    trial = study.ask(studies.SearchSpace.from_dict(SPACE).distributions())
    studies.write_settings(folder, _settings(monitor="val/loss"))  # nothing finished yet: a fix is allowed
    study.tell(trial, 0.5)
    with pytest.raises(ConfigError, match="was started with another monitor; rerun with the same settings"):
        studies.write_settings(folder, _settings(monitor="val/acc", mode="max"))
    studies.write_settings(folder, _settings(monitor="val/loss", n_trials=10))  # more trials: fine
    assert yaml.safe_load((folder / "study.yaml").read_text())["n_trials"] == 10


def _write_after(barrier: Any, folder: Path) -> None:
    barrier.wait()
    for _ in range(20):
        studies.write_settings(folder, _settings())


def test_array_tasks_starting_together_all_write_the_settings(tmp_path: Path) -> None:
    """The tasks of a SLURM array job each write study.yaml as they start: none may fail on another's write."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(8)
    tasks = [context.Process(target=_write_after, args=(barrier, tmp_path / "tune_s")) for _ in range(8)]
    for task in tasks:
        task.start()
    for task in tasks:
        task.join(60)
    assert [task.exitcode for task in tasks] == [0] * 8
    assert studies.read_settings(tmp_path / "tune_s") == _settings()
    assert sorted(p.name for p in (tmp_path / "tune_s").iterdir()) == [".locks", "study.yaml"]


def test_a_trial_lock_is_free_exactly_when_its_holder_has_died(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from trainkit.tune.study import try_trial_lock;"
         " assert try_trial_lock(Path(sys.argv[1]), 7) is not None; print('held', flush=True); sys.stdin.read()",
         str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"  # type: ignore[union-attr]
    assert studies.try_trial_lock(tmp_path, 7) is None  # alive: its trial is running
    holder.kill()
    holder.wait()
    fd = studies.try_trial_lock(tmp_path, 7)  # SIGKILLed: the kernel dropped the lock, the trial is an orphan
    assert fd is not None
    assert studies.try_trial_lock(tmp_path, 7) is None  # and now it is ours


def test_the_report_tables_every_trial_and_writes_trials_csv(tmp_path: Path) -> None:
    folder = tmp_path / "tune_s"
    settings = _settings()
    studies.write_settings(folder, settings)
    study = studies.load(folder, settings)
    distributions = studies.SearchSpace.from_dict(SPACE).distributions()
    for value in (0.5, 0.9):
        study.tell(study.ask(distributions), value)
    study.ask(distributions)  # still running
    text = report(folder, settings, write=True)
    assert "study 's', 3/3 trials (2 complete, 1 running)" in text and "best: trial 1, val/acc=0.9" in text
    assert (folder / "trials.csv").read_text().splitlines()[0] == (
        "number,state,value,model.init_args.optimizer.lr,duration_s,run_folder,baseline")
    assert not (folder / "best.yaml").exists()  # trial 1 has no run folder here, so no config to copy


def _study_with_values(folder: Path, values: tuple[float, ...]) -> studies.StudySettings:
    settings = _settings(n_trials=5)
    studies.write_settings(folder, settings)
    study = studies.load(folder, settings)
    distributions = studies.SearchSpace.from_dict(SPACE).distributions()
    for value in values:
        study.tell(study.ask(distributions), value)
    return settings


@pytest.mark.parametrize("appended", [False, True])
def test_a_journal_torn_mid_line_is_repaired_and_the_study_goes_on(
    tmp_path: Path, trainkit, capsys, appended: bool  # noqa: ANN001
) -> None:
    folder = tmp_path / "tune_s"
    settings = _study_with_values(folder, (0.5, 0.9))
    journal = folder / studies.JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # a node lost mid-write
    if appended:  # a runner that did not look appends its record onto the torn line (Optuna issue #5138)
        with journal.open("ab") as file:
            file.write(b'{"op_code":0,"worker_id":"w","study_name":"other","directions":[1]}\n')
    assert trainkit("tune", "--show", folder) == 0
    captured = capsys.readouterr()
    assert f"{journal} had a torn line" in captured.err and "\n" not in captured.err.strip()
    assert "study 's', 2/5 trials (1 complete, 1 running)" in captured.out  # trial 1's last write was cut
    study = studies.load(folder, settings)
    assert [t.value for t in study.get_trials() if t.value is not None] == [0.5]
    study.tell(study.ask(studies.SearchSpace.from_dict(SPACE).distributions()), 0.7)  # the study goes on
    assert len(studies.load(folder, settings).get_trials()) == 3
    kept = list(folder.glob("journal.log.torn-*"))
    assert len(kept) == 1 and lines[-1][: len(lines[-1]) // 2] in kept[0].read_bytes()


def test_the_table_carries_test_metrics_and_best_yaml_says_what_was_searched(tmp_path: Path, trainkit, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "my_study"
    settings = _settings(name="my_study")
    assert studies.study_dir(tmp_path, "digits", "my_study") == tmp_path / "digits" / "my_study"  # the name alone
    studies.write_settings(folder, settings)
    study = studies.load(folder, settings)
    distributions = studies.SearchSpace.from_dict(SPACE).distributions()
    for number, (value, test_acc) in enumerate([(0.5, 0.4812345), (0.9, 0.87654321)]):
        trial = study.ask(distributions)
        run = folder / f"trial_{number}"
        run.mkdir()
        csv = f"epoch,step,val/acc,test/acc,test/loss\n0,9,{value},,\n1,19,,{test_acc},0.25\n"
        (run / "metrics.csv").write_text(csv)
        (run / "config.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 5}, "model": {"init_args": {
            "optimizer": {"lr": trial.params["model.init_args.optimizer.lr"]}}}}))
        study.tell(trial, value)
    text = report(folder, settings, write=True)
    header, _, best = text.splitlines()[1:4]
    assert header.split()[:6] == ["#", "state", "val/acc", "lr", "test/acc", "test/loss"]
    assert best.split()[:5] == ["1*", "complete", "0.9", best.split()[3], "0.8765"]  # 4 significant digits
    assert "test/acc,test/loss" in (folder / "trials.csv").read_text().splitlines()[0]
    head = (folder / "best.yaml").read_text()
    lr = study.trials[1].params["model.init_args.optimizer.lr"]
    assert f"#   model.init_args.optimizer.lr: {lr!r}" in head
    assert "trainer.max_epochs 5 was each trial's budget in the search" in head and "--trainer.max_epochs N" in head
    assert yaml.safe_load(head)["model"]["init_args"]["optimizer"]["lr"] == lr

    capsys.readouterr()
    assert trainkit("tune", "--show", folder, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["best"]["number"] == 1 and shown["best"]["test/acc"] == 0.87654321
    assert [t["state"] for t in shown["trials"]] == ["complete", "complete"] and shown["settings"]["name"] == "my_study"
