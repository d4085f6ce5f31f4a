"""Keras-exact training output: golden lines with a fake clock, a real pty, and a pipe."""

import io
import os
import pty
import re
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

import gpunet as gn
from gpunet import progress
from gpunet.callbacks import LazyLogs, ProgbarLogger
from tests.conftest import session_backend_env
from tests.terminal import screen

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "configs", "quickstart.yaml")


def _train_two_epochs(output) -> list[str]:
    """The command line that trains the quick-start config for 2 epochs into `output`."""
    return [
        sys.executable,
        "-m",
        "gpunet",
        "train",
        QUICKSTART,
        "--set",
        "fit.epochs=2",
        "--output",
        str(output),
    ]


BAR = "━" * 20
# Keras 3's summary of its mnist_mlp example on an 80-column terminal, line for line.
SUMMARY_GOLDEN = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┓
┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━┩
│ dense (Dense)                   │ (None, 512)            │       401,920 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dropout (Dropout)               │ (None, 512)            │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_1 (Dense)                 │ (None, 512)            │       262,656 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dropout_1 (Dropout)             │ (None, 512)            │             0 │
├─────────────────────────────────┼────────────────────────┼───────────────┤
│ dense_2 (Dense)                 │ (None, 10)             │         5,130 │
└─────────────────────────────────┴────────────────────────┴───────────────┘
 Total params: 669,706 (2.55 MB)
 Trainable params: 669,706 (2.55 MB)
 Non-trainable params: 0 (0.00 B)"""


def test_value_time_and_eta_formats():
    assert progress.format_value(0.30114) == "0.3011"
    assert progress.format_value(1e-4) == "1.0000e-04"
    assert progress.format_value(-1e-4) == "-1.0000e-04"  # abs(): Keras forgets it in one path
    assert progress.format_value(-0.5) == "-0.5000"
    assert progress.format_time_per_step(1.2) == "1s/step"
    assert progress.format_time_per_step(0.0031) == "3ms/step"
    assert progress.format_time_per_step(0.00045) == "450us/step"
    assert [progress.format_eta(s) for s in (5, 75, 3725)] == ["5s", "1:15", "1:02:05"]


def test_a_first_epoch_of_unknown_length_shows_the_count_and_the_seconds_so_far():
    # Keras's progbar without a target: "%7d/Unknown", the elapsed seconds, no bar, no ETA.
    line = progress.progress_line(37, None, 0.005, {"loss": 0.5}, 2.2, None)
    assert line.plain == "     37/Unknown 2s 5ms/step - loss: 0.5000"


def test_mid_epoch_line_and_its_styles():
    line = progress.progress_line(
        57, 375, 0.003, {"loss": 0.8963, "accuracy": 0.7313}, elapsed=None, eta=1.0
    )
    assert line.plain == f" 57/375 {BAR} 1s 3ms/step - accuracy: 0.7313 - loss: 0.8963"
    styles = {line.plain[s.start : s.end]: str(s.style) for s in line.spans}
    assert styles[" 57/375"] == "bold"
    assert styles["━" * 3] == "green"  # int(20 * 57 / 375) cells done
    assert styles["━" * 17] == "dim"
    assert styles["1s"] == "bold"


def _drive(logger, steps=4, dt=1.5, logs=None):
    """Feed one epoch of hooks to a logger; the fake clock advances dt per call."""
    logs = logs or {"loss": 0.30114, "accuracy": 0.91234}
    logger.set_params({"epochs": 20, "steps": steps, "verbose": logger.verbose})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for step in range(steps):
        logger.on_train_batch_end(step, logs)
    logger.on_epoch_end(0, {**logs, "val_loss": 0.12981, "val_accuracy": 0.96121})
    logger.on_train_end()


def _clock(dt, start=1000.0):
    """A fake clock; it starts far from zero so that only differences of its reads count."""
    ticks = iter(range(10**6))
    return lambda: start + next(ticks) * dt


def test_verbose_1_on_a_terminal_ends_with_the_keras_line():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system="standard")
    _drive(ProgbarLogger(1, console=console, clock=_clock(1.5)))
    # 6 clock reads: begin 0, steps at 1.5..6, end 7.5 -> 8s; (7.5 - 1.5) / 3 steps = 2s/step.
    assert screen(out.getvalue())[:2] == [
        "Epoch 1/20",
        f"4/4 {BAR} 8s 2s/step - accuracy: 0.9123 - loss: 0.3011 - val_accuracy: 0.9612 "
        "- val_loss: 0.1298",
    ]
    assert "\x1b[32m" in out.getvalue()  # the done part of the bar is green


def test_verbose_1_mid_epoch_screen():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    logger = ProgbarLogger(1, console=console, clock=_clock(0.003))
    logger.set_params({"epochs": 20, "steps": 375})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for step in range(57):
        logger._last_draw = -1.0  # draw every step for this check
        logger.on_train_batch_end(step, {"loss": 0.8963, "accuracy": 0.7313})
    # 57 steps at 3 ms: 3ms/step, ETA 318 * 3 ms = 0.95 s -> "0s".
    assert (
        screen(out.getvalue())[1] == f" 57/375 {BAR} 0s 3ms/step - accuracy: 0.7313 - loss: 0.8963"
    )
    logger.on_train_end()


def test_verbose_2_and_off_terminal_print_one_plain_line():
    for verbose, terminal in ((2, True), (1, False)):
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=40)  # narrow: must not wrap
        _drive(ProgbarLogger(verbose, console=console, clock=_clock(1.5)))
        text = out.getvalue()
        assert text == (
            "Epoch 1/20\n4/4 - 8s - 2s/step - accuracy: 0.9123 - loss: 0.3011 - "
            "val_accuracy: 0.9612 - val_loss: 0.1298\n"
        )


def test_one_epoch_prints_no_epoch_header_and_names_verbatim():
    out = io.StringIO()
    logger = ProgbarLogger(console=Console(file=out, force_terminal=False), clock=_clock(0.5))
    assert logger.verbose == 1  # the live bar by default, as Keras's fit(verbose=1)
    logger.set_params({"epochs": 1, "steps": 2})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for step in range(2):
        logger.on_train_batch_end(step, {"loss[0]": 0.5})
    logger.on_epoch_end(0, {"loss[0]": 0.5, "[bold]x": 1.0})
    logger.on_train_end()
    # Keras prints "Epoch i/n" only when n > 1; rich markup is off, so brackets print as given.
    assert out.getvalue() == "2/2 - 2s - 1s/step - [bold]x: 1.0000 - loss[0]: 0.5000\n"


def test_two_epochs_print_the_header_and_a_one_step_epoch_times_its_one_step():
    out = io.StringIO()
    logger = ProgbarLogger(2, console=Console(file=out, force_terminal=False), clock=_clock(3.0))
    logger.set_params({"epochs": 2, "steps": 1})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    logger.on_train_batch_end(0, {"loss": 0.5})
    logger.on_epoch_end(0, {"loss": 0.5})
    # One step: no later steps to average, so the step's time is the epoch's (clock 3 s a read).
    assert out.getvalue() == "Epoch 1/2\n1/1 - 6s - 6s/step - loss: 0.5000\n"


def test_metrics_are_read_only_when_the_bar_redraws():
    reads = []

    def read():
        reads.append(1)
        return 1.0

    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    logger = ProgbarLogger(1, console=console, clock=_clock(0.01))
    logger.set_params({"epochs": 1, "steps": 100})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for step in range(100):
        logger.on_train_batch_end(step, LazyLogs({"loss": read}))
    assert 15 <= len(reads) <= 21  # 100 steps of 10 ms, redrawn at most every 50 ms
    logger.on_epoch_end(0, {"loss": 1.0})


def test_summary_of_the_keras_mnist_mlp():
    model = gn.Sequential(
        [
            gn.layers.Dense(512, activation="relu", input_shape=(784,)),
            gn.layers.Dropout(0.2),
            gn.layers.Dense(512, activation="relu"),
            gn.layers.Dropout(0.2),
            gn.layers.Dense(10, activation="softmax"),
        ]
    )
    lines = []
    model.summary(print_fn=lines.append, line_length=76)  # Keras's width on an 80-column terminal
    assert "\n".join(lines) == SUMMARY_GOLDEN
    assert model.count_params() == 669_706


def test_summary_on_a_terminal_puts_the_title_and_totals_in_bold():
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=80)
    rows = [("dense (Dense)", "(None, 10)", 7850)]
    for renderable in progress.summary_renderables("sequential", rows, 7850, 76):
        console.print(renderable, highlight=False)
    text = console.file.getvalue()
    bold = "\x1b[1m"
    assert f'{bold}Model: "sequential"' in text
    for label in ("Total params:", "Trainable params:", "Non-trainable params:"):
        assert f"{bold} {label} " in text


EPOCH_LINE = re.compile(
    rf"^375/375 {BAR} \d+s \d+(s|ms|us)/step - accuracy: \d\.\d{{4}} - loss: \d\.\d{{4}} "
    r"- val_accuracy: \d\.\d{4} - val_loss: \d\.\d{4}$"
)


def test_real_terminal_shows_keras_epoch_lines(tmp_path, fashion_mnist_folder):
    args = _train_two_epochs(tmp_path)
    pid, fd = pty.fork()
    if pid == 0:  # the child: gpunet on a pseudo-terminal
        os.environ.update(**session_backend_env(), COLUMNS="160", LINES="50", TERM="xterm")
        os.execv(sys.executable, args)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lines = screen(b"".join(chunks).decode())
    assert lines[lines.index("Epoch 1/2") + 1] and EPOCH_LINE.match(
        lines[lines.index("Epoch 1/2") + 1]
    )
    assert EPOCH_LINE.match(lines[lines.index("Epoch 2/2") + 1])


def test_a_pipe_gets_plain_lines_only(tmp_path, fashion_mnist_folder):
    log = tmp_path / "log.txt"
    with open(log, "w") as f:
        result = subprocess.run(
            _train_two_epochs(tmp_path / "runs"),
            stdout=f,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            env=dict(os.environ, **session_backend_env()),
        )
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert not any(c in text for c in "\r\b\x1b")
    epoch_lines = [line for line in text.splitlines() if line.startswith("375/375 - ")]
    assert len(epoch_lines) == 2 and text.splitlines()[0] == "Epoch 1/2"


def test_fit_uses_a_given_progbar_logger():
    out = io.StringIO()
    logger = ProgbarLogger(2, console=Console(file=out, force_terminal=False), clock=_clock(0.5))
    x = np.random.default_rng(0).random((20, 3), dtype=np.float32)
    model = gn.Sequential([gn.layers.Input((3,)), gn.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(x, x[:, :1], epochs=2, batch_size=10, callbacks=[logger], verbose=1)
    assert out.getvalue().count("2/2 - ") == 2  # no second, default logger


def test_force_color_and_no_color_are_honoured(monkeypatch, capsys):
    monkeypatch.setenv("FORCE_COLOR", "1")  # a pipe, but the user asks for the live bar
    monkeypatch.delenv("NO_COLOR", raising=False)
    _drive(ProgbarLogger(1, clock=_clock(1.5)))
    assert "\x1b[" in capsys.readouterr().out
    monkeypatch.setenv("NO_COLOR", "1")
    _drive(ProgbarLogger(1, clock=_clock(1.5)))
    out = capsys.readouterr().out
    assert "\x1b[32m" not in out and BAR in out  # still the live bar, without colour


@pytest.mark.parametrize(
    "value, text",
    [
        (1.5, "1.5000"),
        (0.0011, "0.0011"),
        (1e-3, "1.0000e-03"),
        (-1e-3, "-1.0000e-03"),
        (-0.5, "-0.5000"),
        (0.0, "0.0000e+00"),
    ],
)
def test_metric_format_switches_at_one_thousandth(value, text):
    # Keras: .4f when |value| > 1e-3, else .4e (1e-3 itself takes .4e; the sign does not count).
    assert progress.format_value(value) == text


@pytest.mark.parametrize(
    "seconds, text",
    [
        (1.0, "1s/step"),
        (0.9996, "1000ms/step"),
        (1e-3, "1ms/step"),
        (0.000999, "999us/step"),
        (2.5e-6, "2us/step"),
    ],
)
def test_time_per_step_units_switch_at_one_second_and_one_millisecond(seconds, text):
    assert progress.format_time_per_step(seconds) == text


@pytest.mark.parametrize(
    "seconds, text",
    [
        (59.9, "59s"),
        (60, "1:00"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3660, "1:01:00"),  # the first minute past the hour is whole
        (3725, "1:02:05"),
        (7199, "1:59:59"),  # minutes past the hour, 59 of them
    ],
)
def test_eta_format_switches_at_a_minute_and_an_hour(seconds, text):
    assert progress.format_eta(seconds) == text


@pytest.mark.parametrize(
    "size, text",
    [
        (0, "0.00 B"),
        (1023, "1023.00 B"),
        (1024, "1.00 KB"),
        (2.55 * 2**20, "2.55 MB"),
        (3 * 2**30, "3.00 GB"),
        (5 * 2**40, "5120.00 GB"),
    ],
)
def test_summary_sizes_switch_unit_at_1024_and_stop_at_gigabytes(size, text):
    assert progress.readable_size(size) == text


def test_a_resumed_epoch_counts_the_seconds_it_ran_before():
    class Progress:
        seconds_before = 7.0

    class Model:
        _fit_progress = Progress()

    out = io.StringIO()
    logger = ProgbarLogger(2, console=Console(file=out, force_terminal=False), clock=_clock(1.0))
    logger.set_model(Model())
    logger.set_params({"epochs": 1, "steps": 2})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    logger.on_train_batch_end(0, {})
    logger.on_train_batch_end(1, {})
    logger.on_epoch_end(0, {"loss": 0.5})
    # clock 0 at begin, the epoch ran 7 s before: 3 reads later it is 3 + 7 = 10 s
    assert out.getvalue() == "2/2 - 10s - 2s/step - loss: 0.5000\n"  # (3 - 1) / 1 step


def test_a_bar_without_fit_refreshes_at_exactly_its_interval():
    # Outside fit (no progress schedule in the logs) the bar draws when refresh_interval has
    # passed, the boundary included.
    from rich.console import Console

    import gpunet as gn

    ticks = iter([0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.0])
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    bar = gn.callbacks.ProgbarLogger(1, console=console, clock=lambda: next(ticks),
                                     refresh_interval=0.5)  # fmt: skip
    bar.set_params({"verbose": 1, "epochs": 1, "steps": 4})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    for step in range(4):
        bar.on_train_batch_end(step, {"loss": 1.0})
    bar.on_epoch_end(0, {"loss": 1.0})
    text = console.file.getvalue()
    assert all(f"{k}/4" in text for k in (1, 2, 3, 4))
