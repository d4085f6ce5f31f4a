"""Data-parallel training with real ranks: `mpirun -n 2` (MPICH from PyPI, in the test extra)
against one process, run to run, across a checkpoint, and when a rank dies or hangs. On the
stand-in session the ranks run the CuPy path: its gradients cross through the stand-in's NCCL.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from gpunet import checkpoint
from tests.conftest import ROOT, session_backend_env

MPIRUN = os.path.join(os.path.dirname(sys.executable), "mpirun")  # the mpich wheel's
EPOCHS = 3


def _missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install -e '.[test]')"
    if not os.path.exists(MPIRUN):
        return f"no mpirun beside {sys.executable} (the mpich wheel of the test extra)"
    return None


@pytest.fixture(autouse=True)
def mpi():
    why = _missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI installs MPI: {why}")
        pytest.skip(why)


def _env(**extra):
    env = {**os.environ, **session_backend_env(), "PYTHONUNBUFFERED": "1", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return env


def _run(command, timeout=240, **env):
    return subprocess.run(
        command, env=_env(**env), capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def _ranks(n: int, *command):
    return [MPIRUN, "-n", str(n), sys.executable, *command]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """1,006 samples: 804 train, so the last batch of 16 has 4 rows, 2 per rank (with none for
    a rank, the CuPy path would take the reference step: the fused kernels take no empty
    batch; test_distributed.py checks an empty shard)."""
    folder = tmp_path_factory.mktemp("ranks")
    rs = np.random.default_rng(0)
    x = rs.random((1006, 20), dtype=np.float32)
    y = ((x - 0.5) @ rs.standard_normal((20, 4))).argmax(axis=1)
    np.savez(folder / "data.npz", x=x, y=y)
    np.savez(folder / "test.npz", x=x[:300], y=y[:300])
    cfg = {
        "seed": 5,
        "data": {
            "path": str(folder / "data.npz"),
            "test_path": str(folder / "test.npz"),
            "validation_split": 0.2,
        },
        "model": [
            {"type": "Dense", "units": 32, "activation": "relu", "kernel_regularizer": "l2"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 4, "activation": "softmax"},
        ],
        "compile": {
            "loss": "sparse_categorical_crossentropy",
            "optimizer": "adam",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": EPOCHS, "batch_size": 16, "verbose": 2},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    cfg["fit"]["epochs"] = 30  # for the run a signal interrupts, and resumes
    (folder / "medium.yaml").write_text(yaml.safe_dump(cfg))
    cfg["fit"]["epochs"] = 400  # for the runs a test ends by killing a rank
    (folder / "long.yaml").write_text(yaml.safe_dump(cfg))
    return folder


def _train(workdir, output, ranks=None, config="config.yaml", **env):
    command = [sys.executable, "-m", "gpunet", "train", str(workdir / config), "--output", output]
    if ranks is not None:
        command = [MPIRUN, "-n", str(ranks), *command]
    return _run(command, **env)


def _run_dir(output):
    (name,) = os.listdir(output)
    return os.path.join(output, name)


def _results(run_dir):
    with open(os.path.join(run_dir, "history.json")) as f:
        history = [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in json.load(f)]
    with np.load(os.path.join(run_dir, "weights.npz")) as weights:
        arrays = {k: weights[k] for k in weights.files}
    with open(os.path.join(run_dir, "metrics.json")) as f:
        test = json.load(f)["test"]
    return history, arrays, test


@pytest.fixture(scope="module")
def two_ranks(workdir, tmp_path_factory):
    output = str(tmp_path_factory.mktemp("two"))
    result = _train(workdir, output, ranks=2)
    assert result.returncode == 0, result.stderr
    return result, _run_dir(output)


def test_two_ranks_train_as_one_process_with_the_global_batch(workdir, two_ranks, tmp_path):
    result, run_dir = two_ranks
    single = _train(workdir, str(tmp_path))
    assert single.returncode == 0, single.stderr
    history, weights, test = _results(run_dir)
    expected_history, expected_weights, expected_test = _results(_run_dir(tmp_path))
    assert len(history) == EPOCHS
    for row, expected in zip(history, expected_history):
        assert row.keys() == expected.keys()
        for key in row:
            assert row[key] == pytest.approx(expected[key], rel=2e-5, abs=1e-6), key
    for key in weights:
        np.testing.assert_allclose(weights[key], expected_weights[key], rtol=1e-4, atol=2e-6)
    assert test == pytest.approx(expected_test, rel=2e-5)
    # Rank 0 alone prints the epochs and writes the run directory.
    assert result.stdout.count(f"Epoch 1/{EPOCHS}") == 1
    assert result.stdout.count("Run directory:") == 1 and result.stdout.count("Test:") == 1
    assert len(os.listdir(os.path.dirname(run_dir))) == 1


def test_two_ranks_are_bit_identical_from_run_to_run(workdir, two_ranks, tmp_path):
    again = _train(workdir, str(tmp_path), ranks=2)
    assert again.returncode == 0, again.stderr
    history, weights, test = _results(two_ranks[1])
    history_2, weights_2, test_2 = _results(_run_dir(tmp_path))
    assert history == history_2 and test == test_2
    for key in weights:
        np.testing.assert_array_equal(weights[key], weights_2[key])


def test_an_uneven_global_batch_is_one_line_from_rank_0(workdir, tmp_path):
    result = _run(
        _ranks(
            2,
            "-m",
            "gpunet",
            "train",
            str(workdir / "config.yaml"),
            "--output",
            str(tmp_path),
            "--set",
            "fit.batch_size=15",
        )  # fmt: skip
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "batch_size" in line]
    assert lines == [
        f"error: {workdir / 'config.yaml'}: fit.batch_size: batch_size 15 is the global batch, "
        "split evenly across 2 ranks: it must be a multiple of 2 (e.g. 14)."
    ]
    assert "Traceback" not in result.stderr and os.listdir(tmp_path) == []


def _fit(tmp_path, ranks: int, mode: str):
    result = _run(_ranks(ranks, "-m", "tests.mpi_fit", str(tmp_path), mode))
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / f"{mode}-{ranks}.npz") as found:
        return {k: found[k] for k in found.files}


def test_a_checkpoint_of_two_ranks_resumes_on_two_exactly_and_on_one(tmp_path):
    straight = _fit(tmp_path, 2, "straight")  # saves a checkpoint mid-epoch, goes on
    _, meta = checkpoint.load(str(tmp_path / "checkpoint.npz"))
    assert (meta["epoch"], meta["step"], meta["ranks"]) == (0, 21, 2)
    on_two = _fit(tmp_path, 2, "resume")
    np.testing.assert_array_equal(on_two["weights"], straight["weights"])
    assert json.loads(bytes(on_two["history"])) == json.loads(bytes(straight["history"]))
    on_one = _fit(tmp_path, 1, "resume")
    np.testing.assert_allclose(on_one["weights"], straight["weights"], rtol=1e-4, atol=1e-6)
    for key, values in json.loads(bytes(straight["history"])).items():
        resumed = json.loads(bytes(on_one["history"]))[key]
        assert resumed == pytest.approx(values, rel=1e-5), key


def test_on_the_cupy_path_each_step_is_one_graph_with_its_nccl_all_reduce_and_no_sync(tmp_path):
    found = _fit(tmp_path, 2, "ledger")
    steps = [s for s in json.loads(bytes(found["ledger"])) if s["epoch"] == 1]
    assert len(steps) == 29  # 450 training samples in batches of 16
    quiet = [s for s in steps if not s["synced"]]
    assert quiet, "every step refreshed: the test shows nothing"
    for record in quiet:  # one graph replay, the all-reduce inside it
        assert (record["graph_launches"], record["collectives"]) == (1, 1), record
        assert (record["syncs"], record["allocs"]) == (0, 0), record
    for record in steps:
        if record["synced"]:  # the logs: two more all-reduces (the sums, the step totals)
            assert (record["collectives"], record["syncs"]) == (3, 1), record


def _rank_pid(marker: str, rank: int) -> int | None:
    """The pid of rank `rank` of the job whose command line holds `marker`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if marker in command and "gpunet" in command and f"PMI_RANK={rank}".encode() in environ:
            return int(pid)
    return None


def _start_long_run(workdir, output, config="long.yaml", **env):
    process = subprocess.Popen(
        _ranks(2, "-m", "gpunet", "train", str(workdir / config), "--output", str(output)),
        env=_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = os.listdir(output) if output.exists() else []
        if runs and os.path.exists(os.path.join(output, runs[0], "checkpoint.npz")):
            return process, os.path.join(output, runs[0])
        time.sleep(0.01)
    process.kill()
    pytest.fail("no checkpoint appeared within 120 s")


def _finish(process, marker: str, timeout: float) -> str:
    """The job's stderr once it ends; past `timeout`, its launcher and ranks are killed and
    reaped here (a job left running would fail a later test, through its warnings)."""
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        for rank in (0, 1):
            pid = _rank_pid(marker, rank)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
        process.communicate(timeout=30)
        raise


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_rank_that_dies_or_hangs_ends_the_job_and_the_checkpoint_loads(workdir, tmp_path, how):
    # A hung rank on NumPy: the stand-in's NCCL sums on the host and waits there, where a GPU
    # queues the sum and the host meets the deadline at the step's end (test_distributed.py
    # checks that deadline on device reads).
    backend = {"GPUNET_BACKEND": "numpy"} if how == "hung" else {}
    process, run_dir = _start_long_run(workdir, tmp_path, GPUNET_RANK_TIMEOUT="3", **backend)
    pid = _rank_pid(str(tmp_path), 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
    started = time.monotonic()
    try:
        err = _finish(process, str(tmp_path), timeout=60)
    finally:
        if how == "hung" and os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
    assert time.monotonic() - started < 30
    assert process.returncode != 0
    if how == "hung":
        # Rank 0 waits at whichever exchange it reaches after rank 1 stops: mostly a step's,
        # at an epoch's end the sums of the logs (CI saw it once).
        assert re.search(
            r"^gpunet: rank 1 did not reach (a step's [a-z -]+|the sums of the logs) within 3 s "
            r"\(GPUNET_RANK_TIMEOUT\): it died or hangs; ending the job\.$",
            err,
            re.MULTILINE,
        ), err
    _, meta = checkpoint.load(os.path.join(run_dir, "checkpoint.npz"))
    assert meta["epoch"] >= 1 and meta["ranks"] == 2


def test_ctrl_c_checkpoints_every_rank_at_one_step_and_two_ranks_resume_bit_for_bit(
    workdir, tmp_path
):
    # mpirun passes SIGINT to every rank, each at its own moment: the ranks agree on it after
    # a step and checkpoint together at the next one.
    straight = _train(workdir, str(tmp_path / "straight"), ranks=2, config="medium.yaml")
    assert straight.returncode == 0, straight.stderr
    process, run_dir = _start_long_run(workdir, tmp_path / "stopped", config="medium.yaml")
    process.send_signal(signal.SIGINT)
    err = _finish(process, str(tmp_path / "stopped"), timeout=120)
    assert process.returncode == 130, err
    assert err.count("SIGINT: stopped after the current step; checkpoint written to") == 1
    assert "Traceback" not in err
    _, meta = checkpoint.load(os.path.join(run_dir, "checkpoint.npz"))
    assert meta["epoch"] < 30
    resumed = _run(
        _ranks(2, "-m", "gpunet", "train", str(workdir / "medium.yaml"), "--resume", run_dir)
    )
    assert resumed.returncode == 0, resumed.stderr
    history, weights, test = _results(run_dir)
    expected_history, expected_weights, expected_test = _results(_run_dir(tmp_path / "straight"))
    assert history == expected_history and test == expected_test
    for key in weights:
        np.testing.assert_array_equal(weights[key], expected_weights[key])


def test_info_shows_each_rank_once():
    result = _run(_ranks(2, "-m", "gpunet", "info"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines.count("ranks: 2") == 1 and result.stdout.count("gpunet 0") == 1
    start = lines.index("ranks: 2")
    assert [line.split(":")[0] for line in lines[start + 1 : start + 3]] == ["  rank 0", "  rank 1"]
    assert "local rank 1 of 2" in lines[start + 2]  # ", GPU 0" on the CuPy path
