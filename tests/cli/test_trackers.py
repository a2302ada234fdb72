"""A tracker logs beside the run folder: a round trip through a real MLflow file store, read back with MlflowClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_DIGITS
from tests.metrics_csv import last_values

MLFLOW = REPO / "configs" / "loggers" / "mlflow.yaml"


def test_mlflow_gets_params_metrics_and_the_config_beside_the_run_folder(workdir: Path, trainkit) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    assert trainkit("fit", *TINY_DIGITS, "--config", MLFLOW, "--test_after_fit", "true") == 0
    run_dir = workdir / "runs" / "digits" / "version_0"
    logged = last_values(run_dir / "metrics.csv")  # the run folder's own loggers are still there
    assert "test/acc" in logged and list(run_dir.glob("events.out.tfevents.*"))

    client = MlflowClient(tracking_uri=f"file:{workdir / 'mlruns'}")
    experiment = client.get_experiment_by_name("trainkit")
    (run,) = client.search_runs([experiment.experiment_id])
    params = run.data.params
    assert params["model/init_args/backbone"] == "test_resnet"
    assert params["model/init_args/optimizer/lr"] == "0.003"
    assert params["trainer/max_epochs"] == "1" and params["data/init_args/image_size"] == "16"
    assert params["experiment"] == "digits" and params["monitor"] == "val/acc"
    metrics = run.data.metrics
    for key in ("test/acc", "test/loss", "val/acc"):
        assert metrics[key] == pytest.approx(float(logged[key]), abs=1e-6), key
    assert run.data.tags["trainkit.run_dir"] == str(run_dir.relative_to(workdir))
    (artifact,) = [a.path for a in client.list_artifacts(run.info.run_id)]
    downloaded = Path(client.download_artifacts(run.info.run_id, artifact, str(workdir)))
    assert artifact == "config.yaml" and downloaded.read_text() == (run_dir / "config.yaml").read_text()


@pytest.mark.parametrize(("uri", "why"), [
    ("bogus://x", "unsupported URI 'bogus://x'"),
    ("http://127.0.0.1:9", "onnection refused"),  # nothing listens on port 9: refused at once, retried briefly
    ("file:{workdir}/a_file/mlruns", "Not a directory"),  # a store that cannot be written (root ignores modes)
])
def test_a_tracking_uri_that_cannot_be_used_is_named_in_one_line_before_training(
    workdir: Path, trainkit, capsys, uri: str, why: str  # noqa: ANN001
) -> None:
    pytest.importorskip("mlflow")
    import time

    (workdir / "a_file").write_text("")
    uri = uri.format(workdir=workdir)
    started = time.monotonic()
    code = trainkit("fit", *TINY_DIGITS, "--config", MLFLOW, "--trainer.logger.init_args.tracking_uri", uri)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and time.monotonic() - started < 60, error
    assert error.startswith(f"trainkit: error: MLflow cannot use tracking_uri {uri} (") and why in error, error
    assert "set --trainer.logger.init_args.tracking_uri" in error
    assert not (workdir / "runs" / "digits" / "version_0" / "checkpoints").exists()  # it stopped before training
