"""Failure-safe training through the CLI: signals, kill -9, divergence, bad output folders."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

import gpunet as gn
from gpunet import checkpoint
from tests.conftest import session_backend_env

EPOCHS = 25


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A small data set and a config whose epochs take tens of milliseconds."""
    folder = tmp_path_factory.mktemp("resilience")
    rs = np.random.default_rng(0)
    x = rs.random((3000, 20), dtype=np.float32)
    y = ((x - 0.5) @ rs.standard_normal((20, 4))).argmax(axis=1)
    np.savez(folder / "data.npz", x=x, y=y)
    np.savez(folder / "test.npz", x=x[:500], y=y[:500])
    cfg = {
        "seed": 5,
        "data": {
            "path": str(folder / "data.npz"),
            "test_path": str(folder / "test.npz"),
            "validation_split": 0.2,
        },
        "model": [
            {"type": "Dense", "units": 64, "activation": "relu"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 4, "activation": "softmax"},
        ],
        "compile": {
            "loss": "sparse_categorical_crossentropy",
            "optimizer": "adam",
            "metrics": ["accuracy"],
        },
        "fit": {
            "epochs": EPOCHS,
            "batch_size": 16,
            "verbose": 2,
            "callbacks": [{"type": "EarlyStopping", "monitor": "val_loss", "patience": 50}],
        },
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def _command(workdir, *extra):
    return [sys.executable, "-m", "gpunet", "train", str(workdir / "config.yaml"), *extra]


def _env():
    return dict(os.environ, **session_backend_env(), PYTHONUNBUFFERED="1")


def _resume(workdir, run_dir):
    return subprocess.run(
        _command(workdir, "--resume", run_dir),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _only_run(output):
    (run,) = [os.path.join(output, d) for d in os.listdir(output)]
    return run


def _start_and_wait_for_checkpoint(workdir, output):
    process = subprocess.Popen(
        _command(workdir, "--output", str(output)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = os.listdir(output) if output.exists() else []
        if runs and os.path.exists(os.path.join(output, runs[0], "checkpoint.npz")):
            return process, os.path.join(output, runs[0])
        time.sleep(0.005)
    process.kill()
    pytest.fail("no checkpoint appeared within 60 s")


def _results(run_dir):
    with open(os.path.join(run_dir, "history.json")) as f:
        history = [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in json.load(f)]
    with np.load(os.path.join(run_dir, "weights.npz"), allow_pickle=False) as weights:
        return history, {k: weights[k] for k in weights.files}


@pytest.fixture(scope="module")
def uninterrupted(workdir, tmp_path_factory):
    output = tmp_path_factory.mktemp("straight")
    result = subprocess.run(
        _command(workdir, "--output", str(output)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return _results(_only_run(output))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_and_resume_is_bit_for_bit(workdir, uninterrupted, tmp_path, sig, code):
    process, run_dir = _start_and_wait_for_checkpoint(workdir, tmp_path)
    time.sleep(0.1)  # somewhere inside a later epoch
    process.send_signal(sig)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert f"Resume with: gpunet train {workdir / 'config.yaml'} --resume {run_dir}" in err
    assert "Traceback" not in err
    _, meta = checkpoint.load(os.path.join(run_dir, "checkpoint.npz"))
    assert meta["epoch"] < EPOCHS
    resumed = _resume(workdir, run_dir)
    assert resumed.returncode == 0, resumed.stderr
    history, weights = _results(run_dir)
    expected_history, expected_weights = uninterrupted
    assert history == expected_history
    assert weights.keys() == expected_weights.keys()
    for key in weights:
        np.testing.assert_array_equal(weights[key], expected_weights[key])


def test_kill_9_at_random_moments_always_leaves_a_resumable_checkpoint(workdir, tmp_path):
    rng = random.Random(0)
    for attempt in range(20):
        output = tmp_path / f"kill{attempt}"
        process, run_dir = _start_and_wait_for_checkpoint(workdir, output)
        if attempt % 2 == 0:  # aim at a checkpoint being written
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                name.endswith(".tmp") for name in os.listdir(run_dir)
            ):
                pass
        else:
            time.sleep(rng.uniform(0.0, 0.4))
        process.kill()
        process.communicate(timeout=60)
        arrays, meta = checkpoint.load(os.path.join(run_dir, "checkpoint.npz"))
        assert np.isfinite(arrays["params"]).all() and meta["step"] == 0
        if attempt % 5 == 0:  # resuming takes a few seconds: check it on some of them
            resumed = _resume(workdir, run_dir)
            assert resumed.returncode == 0, resumed.stderr
            assert not [f for f in os.listdir(run_dir) if f.endswith(".tmp")]


def test_divergence_stops_with_epoch_step_and_checkpoint(workdir, tmp_path):
    bad = yaml.safe_load((workdir / "config.yaml").read_text())
    bad["compile"]["optimizer"] = {"name": "sgd", "learning_rate": 1e30}
    path = tmp_path / "diverge.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = subprocess.run(
        [sys.executable, "-m", "gpunet", "train", str(path), "--output", str(tmp_path / "runs")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    bad_batch = result.stdout.split(": Invalid loss")[0].split("Batch ")[-1]
    assert f"error: the loss became NaN or inf in epoch 1 at batch {bad_batch};" in result.stderr
    assert "no checkpoint yet; the run directory is removed" in result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path / "runs") == []  # a run that never checkpointed leaves nothing


def test_a_diverging_epoch_never_replaces_the_last_good_checkpoint(tmp_path):
    rs = np.random.default_rng(0)
    x, y = rs.random((200, 5), dtype=np.float32), rs.integers(0, 2, 200)
    gn.utils.set_random_seed(0)
    model = gn.Sequential([gn.layers.Input((5,)), gn.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    saver = gn.callbacks.TrainingCheckpoint(str(tmp_path / "c.npz"))
    terminator = gn.callbacks.TerminateOnNaN()
    blow_up = gn.callbacks.LearningRateScheduler(lambda epoch: 0.01 if epoch < 2 else 1e38)
    model.fit(x, y, epochs=6, verbose=0, callbacks=[blow_up, terminator, saver])
    assert terminator.failed_at is not None and terminator.failed_at[0] == 2
    arrays, meta = checkpoint.load(str(tmp_path / "c.npz"))
    assert meta["epoch"] == 2 and np.isfinite(arrays["params"]).all()


def test_unusable_output_folder_is_one_clear_line(workdir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = subprocess.run(
        _command(workdir, "--output", str(blocker / "runs")),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {blocker / 'runs'}")
    assert "Traceback" not in result.stderr


def test_resume_needs_a_checkpoint(workdir, tmp_path):
    result = _resume(workdir, str(tmp_path))
    assert result.returncode == 2 and "no checkpoint.npz there to resume from" in result.stderr


def test_device_out_of_memory_is_a_clear_message(workdir, tmp_path, monkeypatch, capsys):
    # No GPU here: a stand-in carrying CuPy's exception name and module.
    out_of_memory = type("OutOfMemoryError", (MemoryError,), {"__module__": "cupy.cuda.memory"})

    def fail(*args, **kwargs):
        raise out_of_memory("Out of memory allocating 1,073,741,824 bytes")

    monkeypatch.setattr(gn.Sequential, "fit", fail)
    from gpunet import cli

    code = cli.main(["train", str(workdir / "config.yaml"), "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: out of GPU memory with batch_size=16 (Out of memory allocating")
    assert "Try a smaller fit.batch_size" in err and "no checkpoint was written yet" in err
