import os
import subprocess
import sys

import pytest

import gpunet
from gpunet import cli
from tests.conftest import session_backend_env


def _run(*args, env=None):
    full_env = dict(os.environ, **session_backend_env(), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "gpunet", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_version():
    out = _run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"gpunet {gpunet.__version__}"


def test_info_names_backend_and_blas():
    out = _run("info")
    assert out.returncode == 0
    backend = session_backend_env()["GPUNET_BACKEND"]
    lines = out.stdout.splitlines()
    assert f"backend: {backend}" in out.stdout and "BLAS" in out.stdout
    # "cupy: unavailable (why)" without a device, "cupy 14.2.0, CUDA runtime ..." with one
    assert any(line.startswith("cupy") for line in lines)
    assert "ranks: 1 (not started by an MPI launcher)" in lines  # mpirun -n 2: test_distributed_mpi
    assert any(line.startswith("mpi: mpi4py ") for line in lines)  # the test extra has it
    if backend == "cupy":  # where the fused step's GEMMs come from, or why there are none
        assert any(line.startswith("cuBLASLt: ") for line in lines)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("data", "fetch", "cifar"),
            "unknown data set 'cifar'; choose one of mnist, fashion_mnist",
        ),
        (("data", "fetch"), "required: name"),
        (("trian",), "invalid choice: 'trian'"),
        (("data", "info", "mnist", "--path", "/nonexistent"), "/nonexistent: no such folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    out = _run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    out = _run("--debug", "data", "info", "mnist", "--path", "/nonexistent")
    assert out.returncode == 2 and "Traceback" in out.stderr  # the README's exit code still
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")


def test_offline_fetch_names_every_place_and_caches_nothing(tmp_path):
    env = {
        "XDG_CACHE_HOME": str(tmp_path),
        "GPUNET_DATA": str(tmp_path / "data"),
        "GPUNET_MIRROR": "http://127.0.0.1:9/",
    }
    out = _run("data", "fetch", "mnist", env=env)
    assert out.returncode == 2
    assert "mnist: not found locally and the download failed" in out.stderr
    assert str(tmp_path / "data" / "mnist") in out.stderr
    assert "127.0.0.1:9/mnist.npz" in out.stderr
    assert os.listdir(tmp_path / "gpunet" / "mnist") == []


def test_data_info_lists_the_search_order(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GPUNET_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cli.main(["data", "info", "fashion_mnist"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith(str(tmp_path / "data" / "fashion_mnist"))
    assert lines[2].endswith(str(tmp_path / "cache" / "gpunet" / "fashion_mnist"))
    assert lines[3].endswith("/usr/share/datasets/fashion-mnist")


def test_data_verify_removes_a_bad_cached_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "gpunet" / "mnist"
    folder.mkdir(parents=True)
    (folder / "mnist.npz").write_bytes(b"not the real file")
    assert cli.main(["data", "verify", "mnist"]) == 1
    assert "REMOVED" in capsys.readouterr().out
    assert not (folder / "mnist.npz").exists()


def _small_run(tmp_path):
    import numpy as np
    import yaml

    rs = np.random.default_rng(0)
    x = rs.random((48, 4), dtype=np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0.5).astype(int))
    raw = {
        "data": {"path": str(tmp_path / "d.npz")},
        "model": [{"type": "Dense", "units": 2, "activation": "softmax"}],
        "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "sgd"},
        "fit": {"epochs": 1, "batch_size": 16, "verbose": 0},
        "output": {"dir": str(tmp_path / "runs")},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, raw


def test_resume_refuses_a_config_that_differs_from_the_runs(tmp_path, capsys):
    import yaml

    path, raw = _small_run(tmp_path)
    assert cli.main(["train", str(path), "--quiet"]) == 0
    (name,) = os.listdir(tmp_path / "runs")
    run_dir = str(tmp_path / "runs" / name)
    capsys.readouterr()
    raw["model"][0]["units"] = 3
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(raw))
    assert cli.main(["train", str(other), "--resume", run_dir]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {other}: model[0].units is 3, the run being resumed has 2; a resumed run keeps "
        f"its own config: give {run_dir}/config.yaml, or start a new run."
    )
    raw["model"][0]["units"] = 2
    raw["output"]["dir"] = "elsewhere"  # where new runs go does not matter to a resumed one
    other.write_text(yaml.safe_dump(raw))
    assert cli.main(["train", str(other), "--resume", run_dir, "--quiet"]) == 0


def test_train_says_in_one_short_line_when_no_cuda_device_is_there(tmp_path, capsys, monkeypatch):
    from gpunet import backend

    path, _ = _small_run(tmp_path)
    monkeypatch.setattr(backend, "_load_cupy", lambda: (None, "CuPy found no CUDA device"))
    assert cli.main(["train", str(path), "--backend", "auto"]) == 0
    err = capsys.readouterr().err
    assert err == "gpunet: no CUDA device; using NumPy (gpunet info says why)\n"
    assert cli.main(["summary", str(path), "--backend", "numpy"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "Total params: 10" in captured.out
