"""How `gpunet train` starts and what it leaves (gpunet/run.py): everything is checked before the
run directory exists, a failed start leaves nothing behind, relative callback paths land in the
run directory, and a run without final weights is named unfinished."""

import os
import signal

import numpy as np
import pytest

import gpunet as gn
from gpunet import config, run, runs
from gpunet.datasets.idx import DataError


@pytest.fixture
def folder(tmp_path):
    rs = np.random.default_rng(0)
    x = rs.random((64, 5), dtype=np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=x[:, :3].argmax(axis=1))
    np.savez(tmp_path / "wide.npz", x=rs.random((8, 7), dtype=np.float32), y=np.zeros(8, int))
    return tmp_path


def _config(folder, **fit):
    raw = {
        "seed": 1,
        "data": {"path": str(folder / "data.npz"), "validation_split": 0.25},
        "model": [{"type": "Dense", "units": 3, "activation": "softmax"}],
        "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "sgd"},
        "fit": {"epochs": 2, "batch_size": 16, "verbose": 0, **fit},
        "output": {"dir": str(folder / "runs")},
    }
    return raw


def _train(folder, raw, **kwargs):
    cfg = config.from_dict(raw, "c.yaml")
    return run.train(cfg, str(folder / "c.yaml"), quiet=True, **kwargs)


def _runs(folder):
    return os.listdir(folder / "runs") if (folder / "runs").exists() else []


@pytest.mark.parametrize("key", ["test_path", "validation_path"])
def test_data_files_with_other_features_are_refused_before_training(folder, key):
    raw = _config(folder)
    raw["data"][key] = str(folder / "wide.npz")
    with pytest.raises(DataError) as info:
        _train(folder, raw)
    assert str(info.value) == (
        f"{folder / 'wide.npz'}: samples have shape (7,), the training data's "
        f"({folder / 'data.npz'}) have (5,); they must match."
    )
    assert _runs(folder) == []


def test_a_callback_that_would_fail_after_an_epoch_fails_before_the_run_directory(folder):
    raw = _config(folder, callbacks=[{"type": "ModelCheckpoint", "filepath": "/tmp/m-{acc}.npz"}])
    with pytest.raises(ValueError, match=r"names \{acc\}, which this fit does not log; it may use"):
        _train(folder, raw)
    raw = _config(folder, callbacks=[{"type": "CSVLogger", "filename": str(folder / "no/l.csv")}])
    with pytest.raises(ValueError, match="CSVLogger: the folder of .* does not exist"):
        _train(folder, raw)
    assert _runs(folder) == []


def test_a_start_that_fails_inside_fit_removes_the_run_directory_it_made(folder):
    raw = _config(folder, callbacks=[{"type": "ModelCheckpoint", "filepath": "m-{nope}.npz"}])
    with pytest.raises(ValueError, match=r"names \{nope\}"):  # relative: checked inside fit
        _train(folder, raw)
    assert _runs(folder) == []


def test_relative_callback_paths_land_in_the_run_directory(folder, monkeypatch):
    monkeypatch.chdir(folder)
    raw = _config(
        folder,
        callbacks=[
            {"type": "CSVLogger", "filename": "logs/epochs.csv"},
            {"type": "ModelCheckpoint", "filepath": "best-{epoch}.npz", "save_weights_only": True},
        ],
    )
    outcome = _train(folder, raw)
    assert os.path.isfile(os.path.join(outcome.run_dir, "logs", "epochs.csv"))
    assert os.path.isfile(os.path.join(outcome.run_dir, "best-2.npz"))
    assert not os.path.exists(folder / "logs") and not os.path.exists(folder / "best-2.npz")


def test_a_size_that_cannot_fit_fails_before_any_file_is_written(folder):
    raw = _config(folder)
    raw["model"][0]["units"] = 10**12
    with pytest.raises(MemoryError, match=r"parameters need [\d,.]+ GiB .* this machine has"):
        _train(folder, raw)
    assert _runs(folder) == []


def test_an_unfinished_run_is_named_with_how_to_finish_it(folder):
    outcome = _train(folder, _config(folder))
    os.remove(os.path.join(outcome.run_dir, "weights.npz"))
    with pytest.raises(DataError) as info:
        run.load_run(outcome.run_dir)
    config_path = os.path.join(outcome.run_dir, "config.yaml")
    assert str(info.value) == (
        f"{outcome.run_dir}: the run is unfinished (no weights.npz yet, only its checkpoint); "
        f"finish it with: gpunet train {config_path} --resume {outcome.run_dir}"
    )
    os.remove(os.path.join(outcome.run_dir, "checkpoint.npz"))
    with pytest.raises(DataError, match="no weights.npz; not a finished gpunet run directory"):
        run.load_run(outcome.run_dir)


@pytest.mark.parametrize("content", ["[1, 2]", '{"layers": []}', '{"input_shape": [0]}', "{"])
def test_a_damaged_model_json_is_one_line(folder, content):
    outcome = _train(folder, _config(folder))
    path = os.path.join(outcome.run_dir, "model.json")
    with open(path, "w") as f:
        f.write(content)
    with pytest.raises(DataError, match=f"^{path}: "):
        run.load_run(outcome.run_dir)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_results_are_written_waits_for_them(folder, monkeypatch, signum):
    plot = runs.plot_curves

    def plot_after_a_signal(*args):
        os.kill(os.getpid(), signum)  # delivered now, in the middle of the results
        plot(*args)

    monkeypatch.setattr(runs, "plot_curves", plot_after_a_signal)
    before = signal.getsignal(signum)  # SIG_IGN under nohup, the default otherwise
    outcome = _train(folder, _config(folder))
    assert outcome.finished and outcome.signal == signum
    files = set(os.listdir(outcome.run_dir))
    assert {"weights.npz", "history.csv", "metrics.json", "curves.png"} <= files
    assert signal.getsignal(signum) == before  # handlers put back


def test_a_signal_after_the_last_step_lets_the_results_be_written(folder):
    # The last step has ended (and, under MPI, the ranks' last agreement): too late to stop
    # training, so the signal waits for the results, as one during their writing does.
    late = gn.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: (
            os.kill(os.getpid(), signal.SIGTERM) if epoch == 1 else None
        )
    )
    outcome = _train(folder, _config(folder), extra_callbacks=[late])
    assert outcome.finished and outcome.signal == signal.SIGTERM
    assert {"weights.npz", "metrics.json"} <= set(os.listdir(outcome.run_dir))


def test_the_cli_says_a_late_signal_left_the_results_complete(folder, monkeypatch, capsys):
    import yaml

    from gpunet import cli

    plot = runs.plot_curves
    monkeypatch.setattr(
        runs, "plot_curves", lambda *a: (os.kill(os.getpid(), signal.SIGTERM), plot(*a))
    )
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump(_config(folder)))
    assert cli.main(["train", str(path), "--quiet"]) == 128 + signal.SIGTERM
    (run_dir,) = _runs(folder)
    err = capsys.readouterr().err
    assert err.strip() == (
        f"SIGTERM: received while the results were written; they are complete in "
        f"{folder / 'runs' / run_dir}."
    )


def test_a_ctrl_c_while_the_command_starts_is_one_line(monkeypatch, capsys):
    import sys

    from gpunet import launch

    class Interrupting:
        def find_spec(self, name, path=None, target=None):
            if name == "gpunet.cli":
                raise KeyboardInterrupt
            return None

    monkeypatch.delitem(sys.modules, "gpunet.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Interrupting(), *sys.meta_path])
    assert launch.main() == 130
    assert capsys.readouterr().err == "\ngpunet: interrupted while starting; nothing was written.\n"


def test_a_resumed_run_that_diverges_names_the_checkpoint_it_resumed(folder):
    import gpunet as gn

    raw = _config(folder)
    first = _train(folder, raw)
    assert first.checkpoint_epochs == 2
    raw["fit"]["epochs"] = 4
    cfg = config.from_dict(raw, "c.yaml")
    blow_up = gn.callbacks.LambdaCallback(  # the weights go to inf, as a diverging step's would
        on_epoch_begin=lambda epoch, logs: blow_up.model.set_weights(
            [w * np.inf for w in blow_up.model.get_weights()]
        )
    )
    outcome = run.train(cfg, "c.yaml", quiet=True, resume=first.run_dir, extra_callbacks=[blow_up])
    assert outcome.diverged_at is not None and outcome.diverged_at[0] == 2
    assert outcome.checkpoint_epochs == 2  # the one resumed from, kept, not "no checkpoint yet"
    assert os.path.isfile(outcome.checkpoint)
