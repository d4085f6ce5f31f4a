"""Every shipped config trains on the CuPy path (the stand-in), Dropout and all, checkpoints
each epoch, and continues bit for bit after an interruption."""

import glob
import json
import os
import signal
import struct

import numpy as np
import pytest

import gpunet as gn
from gpunet import config, run
from gpunet.datasets import imagesets
from tests.conftest import ROOT, use_standin

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


@pytest.fixture(scope="module")
def small_image_set(tmp_path_factory):
    """600 training and 100 test 28x28 images in the IDX layout MNIST and Fashion-MNIST use
    (this machine has no MNIST; the real Fashion-MNIST would make this test slow)."""
    folder = tmp_path_factory.mktemp("images")
    rs = np.random.default_rng(0)
    arrays = []
    for count in (600, 100):
        x = rs.integers(0, 256, (count, 28, 28)).astype(np.uint8)
        y = (x.reshape(count, -1)[:, :10].argmax(axis=1)).astype(np.uint8)
        arrays += [x, y]
    for name, array in zip(imagesets.IDX_FILES, arrays):
        (folder / name).write_bytes(_idx(array))
    return str(folder)


class SignalAt(gn.callbacks.Callback):
    """Sends this process SIGTERM after step `step` of epoch `epoch`, as `kill` would."""

    def __init__(self, epoch: int, step: int):
        super().__init__()
        self.at = (epoch, step)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            signal.raise_signal(signal.SIGTERM)


def _config(path: str, data_folder: str):
    raw = config.load_raw(path)
    raw["data"]["path"] = data_folder
    if raw["data"].get("validation_samples"):
        raw["data"]["validation_samples"] = 100
    raw["fit"]["epochs"] = 2
    return config.from_dict(raw, path)


def _results(run_dir: str):
    with np.load(os.path.join(run_dir, "weights.npz"), allow_pickle=False) as archive:
        weights = {k: archive[k] for k in archive.files}
    with open(os.path.join(run_dir, "history.json")) as f:
        history = json.load(f)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["backend"] == "cupy"  # the stand-in ran it
    test = metrics["test"]
    return (
        weights,
        [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in history],
        test,
    )


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.basename(p)[:-5])
def test_shipped_config_trains_on_the_cupy_path_and_resumes_exactly(
    path, small_image_set, tmp_path
):
    use_standin()
    cfg = _config(path, small_image_set)
    cfg.backend = None  # the session's (the stand-in), not the config's "auto"
    whole = run.train(cfg, path, output=str(tmp_path / "whole"), quiet=True)
    assert whole.signal is None and whole.checkpoint_epochs == 2
    use_standin()
    cut = run.train(
        cfg, path, output=str(tmp_path / "cut"), quiet=True, extra_callbacks=[SignalAt(1, 1)]
    )
    assert cut.signal == signal.SIGTERM and os.path.exists(cut.checkpoint)
    use_standin()
    resumed = run.train(cfg, path, quiet=True, resume=cut.run_dir)
    assert resumed.signal is None
    expected, got = _results(whole.run_dir), _results(resumed.run_dir)
    for name, array in expected[0].items():
        np.testing.assert_array_equal(got[0][name], array, err_msg=name)
    assert got[1] == expected[1] and got[2] == expected[2]
