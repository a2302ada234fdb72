"""Run folders and checkpoint aliases: best/last/auto resolve to real files, or to one clear error."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY_DIGITS
from trainkit.errors import ConfigError
from trainkit.runs import RunContext, claim_run_dir, next_version, resolve_ckpt_path, run_dir_of_checkpoint


def _ckpt(root: Path, version: int, name: str) -> Path:
    path = root / "exp" / f"version_{version}" / "checkpoints" / f"{name}.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({}, path)
    return path


def test_aliases_pick_the_newest_run_that_has_the_file(tmp_path: Path) -> None:
    _ckpt(tmp_path, 0, "best"), _ckpt(tmp_path, 0, "last")
    newest_last = _ckpt(tmp_path, 2, "last")
    (tmp_path / "exp" / "version_10").mkdir()  # an evaluation-only or crashed run without checkpoints
    assert resolve_ckpt_path("best", tmp_path, "exp") == str(tmp_path / "exp/version_0/checkpoints/best.ckpt")
    assert resolve_ckpt_path("last", tmp_path, "exp") == str(newest_last)
    assert resolve_ckpt_path("auto", tmp_path, "exp") == str(newest_last)
    assert next_version(tmp_path, "exp") == "version_11"


def test_a_config_saved_in_a_run_points_at_that_run(tmp_path: Path) -> None:
    old = _ckpt(tmp_path, 0, "best")
    _ckpt(tmp_path, 1, "best")
    config = old.parent.parent / "config.yaml"
    config.write_text("experiment: exp\n")
    assert resolve_ckpt_path("best", tmp_path, "exp", [config]) == str(old)


def test_missing_files_and_fresh_auto(tmp_path: Path) -> None:
    assert resolve_ckpt_path("auto", tmp_path, "exp") is None
    assert resolve_ckpt_path(None, tmp_path, "exp") is None
    with pytest.raises(ConfigError, match="no 'best' checkpoint") as error:
        resolve_ckpt_path("best", tmp_path, "exp")
    assert f"--runs_dir {tmp_path}" in str(error.value) and f"working folder {Path.cwd()}" in str(error.value)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), tmp_path, "exp")


def test_resume_reuses_the_checkpoints_run_folder(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path, 3, "last")
    assert run_dir_of_checkpoint(ckpt) == ckpt.parent.parent.resolve()
    assert claim_run_dir(tmp_path, "exp", None, str(ckpt))[0] == "version_3"
    assert claim_run_dir(tmp_path, "exp", "job_42", None)[0] == "job_42"
    assert claim_run_dir(tmp_path, "exp", None, None)[0] == "version_4"


@pytest.mark.parametrize("alias", ["last", "auto"])
def test_a_kill_during_the_first_last_save_resumes_from_the_newest_intact_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alias: str
) -> None:
    best = _ckpt(tmp_path, 0, "best")
    run = best.parent.parent
    (best.parent / "last.ckpt.tmp.partial").write_bytes(b"")  # SIGKILL while torch.save wrote the first last.ckpt
    (run / ".provenance.json.999999999").write_text("{")  # and while the run's record was being replaced
    assert resolve_ckpt_path(alias, tmp_path, "exp") == str(best)
    assert f"no whole last.ckpt in {best.parent} (its first save was cut short); resuming from {best}" in (
        capsys.readouterr().err)
    assert sorted(p.name for p in run.rglob("*")) == ["best.ckpt", "checkpoints"]  # the leftovers are gone


def _claim(root: str, seed: int, barrier, names) -> None:  # noqa: ANN001
    barrier.wait()
    version, created = claim_run_dir(root, "exp", None, None)  # what every `trainkit fit` calls for its folder
    (Path(root) / "exp" / version / "config.yaml").write_text(f"seed_everything: {seed}\n")
    names.append((version, created, seed))


def test_fits_started_together_each_claim_their_own_folder(tmp_path: Path) -> None:
    """8 processes released together by a barrier, each claiming a run folder the way a fit does and writing its
    config there: 8 folders, each holding its own process's config (a fit's files all go to the claimed folder:
    tests/cli/test_fit.py)."""
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        barrier, names = manager.Barrier(8), manager.list()
        workers = [context.Process(target=_claim, args=(str(tmp_path), seed, barrier, names)) for seed in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        claimed = list(names)
    assert [worker.exitcode for worker in workers] == [0] * 8
    assert sorted(version for version, _, _ in claimed) == [f"version_{n}" for n in range(8)]
    assert all(created for _, created, _ in claimed)
    for version, _, seed in claimed:
        assert (tmp_path / "exp" / version / "config.yaml").read_text() == f"seed_everything: {seed}\n"
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == [f"version_{n}" for n in range(8)]


@pytest.mark.parametrize(("experiment", "run_name"), [("exp", "../../elsewhere"), ("/abs/exp", None),
                                                        ("../exp", None), ("exp", "/tmp/x"), ("exp", "a/../../b")])
def test_run_folders_stay_inside_runs_dir(tmp_path: Path, experiment: str, run_name: str | None) -> None:
    with pytest.raises(ConfigError, match="outside --runs_dir"):
        claim_run_dir(tmp_path / "runs", experiment, run_name, None)
    assert not (tmp_path / "elsewhere").exists()


def test_a_fresh_fit_into_a_named_run_is_refused_unless_overwritten(tmp_path: Path) -> None:
    old = tmp_path / "exp" / "mine" / "checkpoints" / "best.ckpt"
    old.parent.mkdir(parents=True)
    torch.save({}, old)
    with pytest.raises(ConfigError, match="already holds a run.*--overwrite true"):
        claim_run_dir(tmp_path, "exp", "mine", None)
    assert old.exists()
    assert claim_run_dir(tmp_path, "exp", "mine", str(old))[0] == "mine"  # resuming it is fine
    assert claim_run_dir(tmp_path, "exp", "mine", None, overwrite=True)[0] == "mine"
    assert not old.exists() and (tmp_path / "exp" / "mine").is_dir()


def test_a_failed_start_leaves_no_folder_and_a_reused_name_keeps_its_run(workdir: Path, trainkit, capsys) -> None:  # noqa: ANN001
    assert trainkit("fit", *TINY_DIGITS, "--run_name", "mine", "--test_after_fit", "false") == 0
    assert "TRAINKIT_RUN_VERSION" not in os.environ  # the run context never leaks into the parent's environment
    metrics = (workdir / "runs" / "digits" / "mine" / "metrics.csv").read_text()
    capsys.readouterr()
    assert trainkit("fit", *TINY_DIGITS, "--run_name", "mine") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (workdir / "runs" / "digits" / "mine" / "metrics.csv").read_text() == metrics
    assert trainkit("fit", *TINY_DIGITS, "--model.init_args.num_classes", "5") == 2  # fails after the claim
    assert sorted(p.name for p in (workdir / "runs" / "digits").iterdir()) == ["mine"]


def test_a_moved_run_resumes_into_its_own_folder(workdir: Path, trainkit) -> None:  # noqa: ANN001
    args = [*TINY_DIGITS, "--model.init_args.scheduler.name", "constant", "--test_after_fit", "true"]
    assert trainkit("fit", *args) == 0
    shutil.move(workdir / "runs", workdir / "moved")
    assert trainkit("fit", *args, "--runs_dir", "moved", "--trainer.max_epochs", "2", "--ckpt_path", "last") == 0
    ckpts = workdir / "moved" / "digits" / "version_0" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]  # no last-v1, no best-v1
    last = torch.load(ckpts / "last.ckpt", map_location="cpu", weights_only=True)
    state = next(v for k, v in last["callbacks"].items() if k.startswith("RunCheckpoint"))
    assert last["global_step"] == 8
    assert Path(state["best_model_path"]).resolve().parent == ckpts.resolve()
    assert not (workdir / "runs").exists()


def test_the_run_context_reaches_child_processes_only_while_the_run_runs(tmp_path: Path) -> None:
    show = [sys.executable, "-c", "import os; print(os.environ.get('TRAINKIT_RUN_VERSION'))"]
    context = RunContext(tmp_path, "exp", "version_7")
    with context.for_child_processes():
        inside = subprocess.run(show, capture_output=True, text=True, check=True).stdout.strip()
    assert inside == "version_7"
    assert "TRAINKIT_RUN_VERSION" not in os.environ
    assert context.run_dir == tmp_path / "exp" / "version_7"


def test_only_runs_py_reads_or_writes_the_run_environment_variables() -> None:
    package = Path(__file__).resolve().parents[1] / "trainkit"
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                   if "TRAINKIT_RUN_VERSION" in p.read_text() or "TRAINKIT_RUNS_DIR" in p.read_text())
    assert users == ["runs.py"]
