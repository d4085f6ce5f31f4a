"""Keras's text formats for training progress: metric values, time per step, the epoch line.

Only formatting lives here; the callbacks in `gpunet.callbacks` decide when to print.
"""

from __future__ import annotations


def format_value(value: float) -> str:
    """`.4f` when |value| > 1e-3, else `.4e` (Keras's rule, with the abs() it forgets)."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_metrics(logs: dict) -> str:
    """` - name: value` for each metric, in alphabetical order, val_* after the others."""
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


def epoch_line(steps: int, elapsed: float, time_per_step: float, logs: dict) -> str:
    """Keras's verbose=2 line: `375/375 - 2s - 3ms/step - accuracy: 0.9123 - loss: 0.3011`."""
    return (
        f"{steps}/{steps} - {elapsed:.0f}s - {format_time_per_step(time_per_step)}"
        f"{format_metrics(logs)}"
    )
