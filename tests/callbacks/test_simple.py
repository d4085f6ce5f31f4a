"""CSVLogger and LearningRateScheduler, driven hook by hook: the files and rates they produce."""

import pytest

import gpunet as gn
from tests.callbacks.fakes import Model as _Model


def _log_epochs(path, rows, append=False, separator=","):
    logger = gn.callbacks.CSVLogger(path, separator=separator, append=append)
    logger.on_train_begin()
    for epoch, logs in rows:
        logger.on_epoch_end(epoch, logs)
    logger.on_train_end()


def test_csv_logger_writes_a_header_sorted_keys_and_na_for_missing(tmp_path):
    path = tmp_path / "log.csv"
    _log_epochs(path, [(0, {"loss": 0.5, "accuracy": 0.25}), (1, {"loss": 0.4})], separator=";")
    assert path.read_bytes() == b"epoch;accuracy;loss\n0;0.25;0.5\n1;NA;0.4\n"


def test_csv_logger_append_keeps_the_header_and_its_columns(tmp_path):
    path = tmp_path / "log.csv"
    _log_epochs(path, [(0, {"loss": 0.5, "accuracy": 0.25})])
    _log_epochs(path, [(1, {"accuracy": 0.5, "loss": 0.4, "val_loss": 9.0})], append=True)
    assert path.read_text().splitlines() == ["epoch,accuracy,loss", "0,0.25,0.5", "1,0.5,0.4"]
    _log_epochs(path, [(0, {"loss": 1.0})])  # not appending: a fresh file
    assert path.read_text().splitlines() == ["epoch,loss", "0,1.0"]


def test_learning_rate_scheduler_passes_the_current_rate_and_checks_the_result(capsys):
    seen = []

    def halve(epoch, rate):
        seen.append(rate)
        return rate / 2

    scheduler = gn.callbacks.LearningRateScheduler(halve, verbose=1)
    scheduler.set_model(_Model(0.1))
    for epoch in range(3):
        scheduler.on_epoch_begin(epoch)
    assert seen == [0.1, 0.05, 0.025] and scheduler.model.optimizer.learning_rate == 0.0125
    assert (
        "Epoch 3: LearningRateScheduler setting learning rate to 0.0125." in capsys.readouterr().out
    )
    one_argument = gn.callbacks.LearningRateScheduler(lambda epoch: 0.5**epoch)
    one_argument.set_model(_Model())
    one_argument.on_epoch_begin(3)
    assert one_argument.model.optimizer.learning_rate == 0.125
    bad = gn.callbacks.LearningRateScheduler(lambda epoch: "fast")
    bad.set_model(_Model())
    with pytest.raises(ValueError, match='The output of the "schedule" function should be a float'):
        bad.on_epoch_begin(0)


def test_csv_logger_overwrites_by_default(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("old,content\n1,2\n")
    logger = gn.callbacks.CSVLogger(path)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 0.5})
    logger.on_train_end()
    assert path.read_text() == "epoch,loss\n0,0.5\n"


def test_csv_logger_appends_onto_an_empty_file_with_a_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("")
    _log_epochs(path, [(0, {"loss": 0.5})], append=True)
    assert path.read_text() == "epoch,loss\n0,0.5\n"


def test_csv_logger_appends_with_its_separator_and_the_file_columns(tmp_path):
    path = tmp_path / "log.csv"
    _log_epochs(path, [(0, {"loss": 0.5, "accuracy": 0.25})], separator=";")
    _log_epochs(path, [(1, {"loss": 0.4, "accuracy": 0.5})], append=True, separator=";")
    assert path.read_text() == "epoch;accuracy;loss\n0;0.25;0.5\n1;0.5;0.4\n"


def test_learning_rate_scheduler_is_quiet_by_default(capsys):
    scheduler = gn.callbacks.LearningRateScheduler(lambda epoch, rate: rate / 2)
    model = _Model(0.5)
    scheduler.set_model(model)
    scheduler.on_epoch_begin(0)
    assert model.optimizer.learning_rate == 0.25 and capsys.readouterr().out == ""


def test_lambda_callback_lists_the_hooks_it_takes():
    with pytest.raises(ValueError) as info:
        gn.callbacks.LambdaCallback(on_epoch_finish=print)
    hooks = ", ".join(gn.callbacks.LambdaCallback.HOOKS)
    assert str(info.value).endswith(f"{hooks}.") and "on_epoch_finish" in str(info.value)


def test_backup_and_restore_saves_every_save_freq_steps(tmp_path):
    saved = []

    class Model:
        def save_checkpoint(self, path):
            saved.append(path)

    backup = gn.callbacks.BackupAndRestore(tmp_path, save_freq=3)
    backup.set_model(Model())
    for batch in range(7):
        backup.on_train_batch_end(batch)
    assert len(saved) == 2  # after batches 2 and 5 (the 3rd and 6th steps)
    saved.clear()
    for batch in (0, 1):
        backup.on_train_batch_end(batch)
    assert saved == []
    backup.on_train_batch_end(2)
    assert saved == [str(tmp_path / "checkpoint.npz")]


def test_csv_logger_closes_once_and_tolerates_an_end_without_a_begin(tmp_path):
    logger = gn.callbacks.CSVLogger(tmp_path / "log.csv")
    logger.on_train_end()  # never begun: nothing to close
    logger.on_train_begin()
    logger.on_train_end()
    logger.on_train_end()  # twice: still fine
    assert (tmp_path / "log.csv").exists()


def test_csv_logger_refuses_a_missing_folder_before_the_first_step(tmp_path):
    logger = gn.callbacks.CSVLogger(tmp_path / "nope" / "log.csv")
    with pytest.raises(ValueError) as info:
        logger.check(["loss"])
    assert str(info.value) == (
        f"CSVLogger: the folder of {str(tmp_path / 'nope' / 'log.csv')!r} does not exist; "
        "create it first."
    )
    gn.callbacks.CSVLogger(tmp_path / "log.csv").check(["loss"])  # an existing folder passes
