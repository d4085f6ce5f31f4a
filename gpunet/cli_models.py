"""The command line's model files: `gpunet export`, and a `.keras` file where `evaluate` and
`predict` take a run directory (its data then comes from `--data` / `--input` as given: a
.keras holds no data pipeline)."""

from __future__ import annotations

import os

from gpunet import backend, run
from gpunet.datasets import user
from gpunet.utils import to_categorical


def is_model_file(path: str) -> bool:
    return str(path).endswith(".keras")


def load(path: str, backend_name: str | None):
    """The model a .keras file holds, on the asked backend (else $GPUNET_BACKEND or auto)."""
    if backend_name:
        backend.set_backend(backend_name)
    from gpunet.saving import load_model

    return load_model(path)


def test_data(path: str, data: str | None, model):
    """(x, y) of `--data` for evaluating a .keras model, which must carry its loss."""
    if data is None:
        raise ValueError(
            f"{path}: a .keras file holds no test data; pass --data FILE (.npz with x and y, "
            "or .csv with a label column)."
        )
    if model.loss is None:
        raise ValueError(f"{path}: the model was saved without a loss; evaluate needs one.")
    units = model.output_shape[-1]
    x, y = user.load(data, num_classes=units if units > 1 else None)
    if y.ndim == 1 and units > 1 and not model.loss.sparse:
        y = to_categorical(y, units)  # class labels, one-hot as a run's data pipeline makes them
    return x, y


def cmd_export(args) -> int:
    _, model, arrays = run.load_run(args.run_dir, args.backend)
    path = args.output or os.path.join(args.run_dir, f"model.{args.format}")
    if args.format == "keras":
        model.save(path)
    else:
        model.export(path, format="onnx")
    print(f"Wrote {path}")
    if "standardize/mean" in arrays:
        print(
            "note: this run standardizes its inputs before the model (data.standardize: its "
            "mean and std are in weights.npz); the exported model expects standardized inputs."
        )
    return 0
