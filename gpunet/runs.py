"""Run directories: every file written atomically (temporary file, fsync, rename), a run directory
never reused, weights in `.npz` read back with `allow_pickle=False`."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
import zipfile

import numpy as np

from gpunet.backend import to_host
from gpunet.datasets.idx import DataError

WEIGHTS = "weights.npz"


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write(path: str, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part; the
    file gets the permissions the umask gives a new file (mkstemp's are 0600). A failure (a full
    disk, a read-only folder) raises OSError naming `path`, never the temporary file."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), path) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj) -> None:
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as JSON ({exc}).") from None


def create_run_dir(base: str, name: str) -> str:
    """A new directory `base/name-YYYYmmdd-HHMMSS` (suffixed -1, -2... if taken); never reused.
    `~` and `$VARS` in `base` are expanded, as a shell would."""
    if not base or not base.strip():
        raise DataError("the output folder is empty; give a folder for run directories.")
    base = os.path.expandvars(os.path.expanduser(base))
    if os.path.exists(base) and not os.path.isdir(base):
        raise DataError(f"{base}: is a file; the output must be a folder for run directories.")
    try:
        os.makedirs(base, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{base}: cannot create the output folder ({exc.strerror}).") from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = os.path.join(base, f"{name}-{stamp}" + (f"-{attempt}" if attempt else ""))
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise DataError(f"{base}: cannot create a run directory ({exc.strerror}).") from None
    raise DataError(f"{base}: could not create a new run directory for {name}.")


def save_weights(path: str, model, extra: dict | None = None) -> None:
    """The model's weights as `layer/kernel`, `layer/bias` arrays, plus `extra` arrays."""
    arrays = {}
    for layer in model.layers:
        for (name, _, _), value in zip(layer.param_specs(), layer.weights):
            arrays[f"{layer.name}/{name}"] = to_host(value)
        for name, value in layer.state().items():
            arrays[f"{layer.name}/{name}"] = to_host(value)
    arrays.update(extra or {})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def read_npz(path: str, what: str) -> dict:
    """Every array of an `.npz` file, read with allow_pickle=False; a missing, truncated,
    corrupted (CRC), oddly compressed or pickle-holding file raises one DataError naming it."""
    try:  # our own file object: np.load leaks the one it opens when the zip is unreadable
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; expected {what}.") from None
    except ValueError as exc:
        raise DataError(
            f"{path}: refused: the file holds pickled objects or is not {what} ({exc})."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError, KeyError) as exc:
        raise DataError(f"{path}: damaged or not {what} ({type(exc).__name__}: {exc}).") from None
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):  # NumPy hands over a non-.npy member as bytes
            raise DataError(f"{path}: member {key!r} is not an array; not {what}.")
    return arrays


def load_weights(path: str) -> dict:
    """Arrays of a weights file; a file holding pickled objects is refused."""
    return read_npz(path, "a gpunet weights file")


def assign_weights(model, arrays: dict, path: str) -> None:
    """Set every layer's weights from `arrays` (as written by `save_weights`)."""
    if not model.built:
        model.build()
    values = []
    for layer in model.layers:
        for name in [spec[0] for spec in layer.param_specs()] + list(layer.state()):
            key = f"{layer.name}/{name}"
            if key not in arrays:
                raise DataError(f"{path}: no array {key!r}; the weights do not match the model.")
            values.append(arrays[key])
    try:
        model.set_weights(values)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}") from None


def history_rows(history: dict, extra: dict) -> list[dict]:
    """One row per epoch: epoch number, every logged value, and `extra` per-epoch lists."""
    columns = {**history, **extra}
    count = len(next(iter(columns.values()), []))
    return [{"epoch": i + 1, **{k: v[i] for k, v in columns.items()}} for i in range(count)]


def write_history(folder: str, rows: list[dict]) -> None:
    write_json(os.path.join(folder, "history.json"), rows)
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(os.path.join(folder, "history.csv"), text.getvalue().encode())


def plot_curves(path: str, rows: list[dict], title: str) -> None:
    """`curves.png`: loss and the first metric per epoch, training against validation."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    panels = ["loss"] + [
        k
        for k in (rows[0] if rows else {})
        if k not in ("epoch", "loss", "learning_rate", "epoch_seconds") and not k.startswith("val_")
    ][:1]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for axis, name in zip(axes[0], panels):
        axis.plot(epochs, [r[name] for r in rows], marker="o", label=f"train {name}")
        if rows and f"val_{name}" in rows[0]:
            axis.plot(epochs, [r[f"val_{name}"] for r in rows], marker="o", label=f"val {name}")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write(path, buffer.getvalue())
