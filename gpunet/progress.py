"""Keras's training output, drawn with rich: the epoch progress line and the summary table.

Only formatting and drawing live here; `gpunet.callbacks.ProgbarLogger` decides when to draw.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

BAR_WIDTH = 20
BAR_CHAR = "━"


def format_value(value: float) -> str:
    """`.4f` when |value| > 1e-3, else `.4e` (Keras's rule, with the abs() it forgets)."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_metrics(logs) -> str:
    """` - name: value` for each metric in alphabetical order, val_* after the others."""
    names = sorted(k for k in logs if not k.startswith("val_"))
    names += sorted(k for k in logs if k.startswith("val_"))
    return "".join(f" - {name}: {format_value(float(logs[name]))}" for name in names)


def format_time_per_step(seconds: float) -> str:
    """`3ms/step`: whole seconds, milliseconds or microseconds, as Keras rounds them."""
    if seconds >= 1:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_eta(seconds: float) -> str:
    """Keras's ETA: `Ns` under a minute, `m:ss` under an hour, else `h:mm:ss`."""
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def progress_line(
    current: int,
    total: int | None,
    time_per_step: float,
    logs,
    elapsed: float | None,
    eta: float | None,
) -> Text:
    """The verbose=1 line: ` 57/375 ━━━━━━━━━━━━━━━━━━━━ 1s 3ms/step - accuracy: ...`; the ETA
    mid-epoch, the elapsed seconds at the end. With no total yet (a generator's first epoch),
    Keras's `     57/Unknown 2s 3ms/step - ...`: no bar, the seconds so far."""
    line = Text()
    if total is None:
        line.append(f"{current:7d}/Unknown")
        line.append(f" {elapsed:.0f}s", style="bold")
        line.append(f" {format_time_per_step(time_per_step)}{format_metrics(logs)}")
        return line
    line.append(f"{current:>{len(str(total))}}/{total}", style="bold")
    line.append(" ")
    done = int(BAR_WIDTH * current / total)  # total >= 1: the logger counts the steps seen
    line.append(BAR_CHAR * done, style="green")
    line.append(BAR_CHAR * (BAR_WIDTH - done), style="dim")
    if eta is not None:
        line.append(" ")
        line.append(format_eta(eta), style="bold")
    else:
        line.append(f" {elapsed:.0f}s")
    line.append(f" {format_time_per_step(time_per_step)}{format_metrics(logs)}")
    return line


def epoch_line(steps: int, elapsed: float, time_per_step: float, logs) -> str:
    """Keras's verbose=2 line: `375/375 - 2s - 3ms/step - accuracy: 0.9123 - loss: 0.3011`."""
    return (
        f"{steps}/{steps} - {elapsed:.0f}s - {format_time_per_step(time_per_step)}"
        f"{format_metrics(logs)}"
    )


def readable_size(num_bytes: float) -> str:
    """Keras's summary sizes: base-1024 units with two decimals, `2.55 MB`."""
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:.2f} {unit}"
        num_bytes /= 1024


def summary_renderables(name: str, rows: list[tuple[str, str, int]], counts, width: int):
    """`Model: "name"`, the layer table, and the parameter totals, as Keras 3 prints them;
    `counts` is (trainable, non-trainable) or the trainable count alone."""
    trainable, frozen = counts if isinstance(counts, tuple) else (counts, 0)
    total = trainable + frozen
    # Keras's column positions for sequential models: 45%, 80% and 100% of the line.
    widths, current = [], 0
    for position in (0.45, 0.80, 1.0):
        widths.append(int(position * width) - current)
        current += widths[-1]
    table = Table(width=width, show_lines=True)
    table.add_column("Layer (type)", width=widths[0])  # rich justifies left by default
    table.add_column("Output Shape", width=widths[1])
    table.add_column("Param #", justify="right", width=widths[2])
    for layer, shape, count in rows:
        table.add_row(layer, shape, f"{count:,}")
    totals = [  # float32: 4 bytes each
        Text.assemble((" Total params: ", "bold"), f"{total:,} ({readable_size(total * 4)})"),
        Text.assemble(
            (" Trainable params: ", "bold"), f"{trainable:,} ({readable_size(trainable * 4)})"
        ),
        Text.assemble(
            (" Non-trainable params: ", "bold"), f"{frozen:,} ({readable_size(frozen * 4)})"
        ),
    ]
    return [Text(f'Model: "{name}"', style="bold"), table, *totals]
