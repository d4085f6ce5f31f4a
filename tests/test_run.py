"""`gpunet train` end to end: the run directory, evaluate and predict reproducing it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import gpunet as gn
from gpunet import config, run, run_data, runs
from gpunet.datasets import fashion_mnist
from gpunet.datasets.idx import DataError
from tests.conftest import session_backend_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "configs", "quickstart.yaml")


def _json(path):
    with open(path) as f:
        return json.load(f)


def _gpunet(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "gpunet", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=dict(os.environ, **session_backend_env()),
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, fashion_mnist_folder):
    out = tmp_path_factory.mktemp("runs")
    result = _gpunet("train", QUICKSTART, "--set", "fit.epochs=2", "--output", str(out))
    assert result.returncode == 0, result.stderr
    (run_dir,) = [os.path.join(out, d) for d in os.listdir(out)]
    return run_dir, result


def test_run_directory_is_complete_and_well_formed(quick_run):
    run_dir, result = quick_run
    assert f"Run directory: {run_dir}" in result.stdout
    assert sorted(os.listdir(run_dir)) == [
        "checkpoint.npz",
        "config.yaml",
        "curves.png",
        "history.csv",
        "history.json",
        "metrics.json",
        "model.json",
        "model.keras",
        "weights.npz",
    ]
    with open(os.path.join(run_dir, "config.yaml")) as f:
        cfg = config.from_dict(yaml.safe_load(f), "x")
    assert cfg.fit.epochs == 2  # the resolved config, --set included
    history = _json(os.path.join(run_dir, "history.json"))
    assert [row["epoch"] for row in history] == [1, 2]
    assert set(history[0]) == {
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "epoch_seconds",
    }
    with open(os.path.join(run_dir, "history.csv")) as f:
        lines = f.read().splitlines()
    assert lines[0].split(",")[0] == "epoch" and len(lines) == 3
    metrics = _json(os.path.join(run_dir, "metrics.json"))
    assert 0.75 < metrics["test"]["accuracy"] < 1.0
    with np.load(os.path.join(run_dir, "weights.npz"), allow_pickle=False) as weights:
        assert weights["dense/kernel"].shape == (784, 128)
    from matplotlib import image

    png = image.imread(os.path.join(run_dir, "curves.png"))
    assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 100
    assert not [f for f in os.listdir(run_dir) if f.endswith(".tmp")]


def test_evaluate_reproduces_the_test_metrics_exactly(quick_run):
    run_dir, _ = quick_run
    result = _gpunet("evaluate", run_dir)
    assert result.returncode == 0, result.stderr
    printed = dict(item.split(": ") for item in result.stdout.strip().split(" - "))
    expected = _json(os.path.join(run_dir, "metrics.json"))["test"]
    assert printed == {k: f"{v:.4f}" for k, v in expected.items()}  # 4 digits, as train prints


def test_predict_matches_the_model(quick_run, tmp_path):
    run_dir, _ = quick_run
    (_, _), (x_test, y_test) = fashion_mnist.load_data()
    np.save(tmp_path / "x.npy", x_test[:50])
    out = tmp_path / "preds.csv"
    result = _gpunet("predict", run_dir, "--input", str(tmp_path / "x.npy"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "predicted," + ",".join(f"p{i}" for i in range(10))
    predicted = np.array([int(r.split(",")[0]) for r in rows[1:]])
    probs = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
    assert len(predicted) == 50 and (predicted == y_test[:50]).mean() > 0.7
    cfg, model, arrays = run.load_run(run_dir)
    expected = model.predict(run_data.prepare_inputs(cfg, x_test[:50], arrays))
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-12)  # printed with %.6g
    np.testing.assert_array_equal(predicted, expected.argmax(axis=1))
    bad = _gpunet("predict", run_dir, "--input", str(tmp_path / "missing.npy"))
    assert bad.returncode == 2 and "missing.npy: no such file" in bad.stderr


def test_run_directories_are_never_reused(tmp_path):
    first = runs.create_run_dir(str(tmp_path), "x")
    second = runs.create_run_dir(str(tmp_path), "x")
    assert first != second and os.path.isdir(first) and os.path.isdir(second)


def test_pickled_weights_are_refused(tmp_path):
    path = tmp_path / "weights.npz"
    np.savez(path, **{"dense/kernel": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(DataError, match="refused: the file holds pickled objects"):
        runs.load_weights(str(path))


def test_user_csv_with_validation_and_test_files_and_standardization(tmp_path):
    rs = np.random.default_rng(0)

    def write(name, n):
        x = rs.normal(5.0, 3.0, (n, 4))
        y = (x[:, 0] > 5.0).astype(int) + (x[:, 1] > 5.0).astype(int)
        table = np.column_stack([x, y])
        np.savetxt(tmp_path / name, table, delimiter=",", header="a,b,c,d,label", comments="")

    write("train.csv", 600)
    write("val.csv", 100)
    write("test.csv", 200)
    raw = {
        "seed": 1,
        "data": {
            "path": str(tmp_path / "train.csv"),
            "validation_path": str(tmp_path / "val.csv"),
            "test_path": str(tmp_path / "test.csv"),
            "standardize": True,
        },
        "model": [
            {"type": "Dense", "units": 16, "activation": "relu"},
            {"type": "Dense", "units": 3, "activation": "softmax"},
        ],
        "compile": {
            "loss": "sparse_categorical_crossentropy",
            "optimizer": "adam",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 30, "batch_size": 32, "verbose": 0},
        "output": {"dir": str(tmp_path / "runs")},
    }
    cfg = config.from_dict(raw, "user.yaml")
    run_dir = run.train(cfg, "user.yaml", quiet=True).run_dir
    metrics = _json(os.path.join(run_dir, "metrics.json"))
    assert metrics["test"]["accuracy"] > 0.85
    history = _json(os.path.join(run_dir, "history.json"))
    assert "val_accuracy" in history[-1]
    _, model, arrays = run.load_run(run_dir)
    assert arrays["standardize/mean"].shape == (4,)
    x_new = run_data.prepare_inputs(
        cfg, np.loadtxt(tmp_path / "test.csv", delimiter=",", skiprows=1)[:, :4], arrays
    )
    assert x_new.dtype == np.float32 and abs(float(x_new.mean())) < 0.3
    gn.backend.set_backend("numpy")


def test_the_run_model_file_and_export_give_the_run_predictions(quick_run, tmp_path):
    run_dir, _ = quick_run
    cfg, model, arrays = run.load_run(run_dir)
    (_, _), (x_test, _) = fashion_mnist.load_data()
    x = run_data.prepare_inputs(cfg, x_test[:20], arrays)
    expected = model.predict(x, verbose=0)
    saved = gn.models.load_model(os.path.join(run_dir, "model.keras"))
    np.testing.assert_array_equal(saved.predict(x, verbose=0), expected)
    out = tmp_path / "exported.onnx"
    result = _gpunet("export", run_dir, "--format", "onnx", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"Wrote {out}"
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, rtol=1e-5, atol=1e-7)
    result = _gpunet("export", run_dir, "--output", str(tmp_path / "m.keras"))
    assert result.returncode == 0 and (tmp_path / "m.keras").is_file(), result.stderr
    bad = _gpunet("export", run_dir, "--output", str(tmp_path / "m.zip"))
    assert bad.returncode == 2 and "must end in `.keras`" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_evaluate_and_predict_take_the_run_model_file(quick_run, tmp_path):
    run_dir, _ = quick_run
    cfg, model, arrays = run.load_run(run_dir)
    (_, _), (x_test, y_test) = fashion_mnist.load_data()
    x = run_data.prepare_inputs(cfg, x_test[:200], arrays)  # a .keras holds no data pipeline
    np.savez(tmp_path / "test.npz", x=x, y=y_test[:200])
    np.save(tmp_path / "x.npy", x[:20])
    keras_file = os.path.join(run_dir, "model.keras")
    result = _gpunet("evaluate", keras_file, "--data", str(tmp_path / "test.npz"))
    assert result.returncode == 0, result.stderr
    expected = model.evaluate(
        x, gn.utils.to_categorical(y_test[:200], 10), return_dict=True, verbose=0
    )
    assert result.stdout.strip() == " - ".join(f"{k}: {v:.4f}" for k, v in expected.items())
    result = _gpunet("predict", keras_file, "--input", str(tmp_path / "x.npy"))
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[1:]
    np.testing.assert_array_equal(
        [int(r.split(",")[0]) for r in rows], model.predict(x[:20], verbose=0).argmax(axis=1)
    )
    bad = _gpunet("evaluate", keras_file)
    assert bad.returncode == 2 and "a .keras file holds no test data; pass --data" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_a_test_file_keeps_the_validation_split(tmp_path):
    # A test file once made the split silently ignored: no validation at all.
    rs = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", x=rs.random((103, 5)), y=rs.integers(0, 3, 103))
    np.savez(tmp_path / "test.npz", x=rs.random((20, 5)), y=rs.integers(0, 3, 20))
    raw = {
        "data": {
            "path": str(tmp_path / "train.npz"),
            "test_path": str(tmp_path / "test.npz"),
            "validation_split": 0.25,
        },
        "model": [{"type": "Dense", "units": 3, "activation": "softmax"}],
        "compile": {"loss": "sparse_categorical_crossentropy"},
    }
    data = run_data.load_data(config.from_dict(raw, "user.yaml"))
    assert len(data.x_train) == 77 and len(data.validation[0]) == 26  # floor(103 * 0.75)
    assert len(data.x_test) == 20
    raw["data"]["validation_samples"] = 10
    data = run_data.load_data(config.from_dict(raw, "user.yaml"))
    assert len(data.x_train) == 93 and len(data.validation[1]) == 10
