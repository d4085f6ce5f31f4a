"""Keras's ways to reach a model's layers, weights and logged names: `get_layer`, `weights`,
`trainable_weights`, `get_weights`/`set_weights`, `save_weights`/`load_weights` (Keras 3's
`.weights.h5`), `count_params`, `metrics_names`, and the `summary()` table that counts them."""

from __future__ import annotations

import io
import math
import os
import shutil

import numpy as np
from rich.console import Console

from gpunet import backend, inputs, progress
from gpunet.trainer import evaluation_names

FLOATX = inputs.FLOATX


class LayerAccess:
    """Mixed into Sequential, which provides `layers`, `name`, `_ensure_built` and `_params`."""

    def get_layer(self, name: str | None = None, index: int | None = None):
        """The layer called `name`, or at position `index` of `layers` (Keras: one of them)."""
        if name is not None and index is not None:
            raise ValueError(
                f"{self.name}: get_layer takes a layer name or an index, not both "
                f"(received name={name!r}, index={index!r})."
            )
        if index is not None:
            if not inputs.is_int(index) or not -len(self.layers) <= index < len(self.layers):
                raise ValueError(
                    f"{self.name}: no layer at index {index!r}; the model has "
                    f"{len(self.layers)} layers."
                )
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(
                f"{self.name}: no layer named {name!r}; its layers are "
                f"{', '.join(layer.name for layer in self.layers) or 'none'}."
            )
        raise ValueError(f"{self.name}: get_layer needs a layer name or an index.")

    @property
    def metrics_names(self) -> list[str]:
        """The names `evaluate` returns its values under, in order: "loss", then the metrics.

        Keras 3 answers ["loss", "compile_metrics"] once compiled metrics exist; the names are
        what Keras 2 code (`dict(zip(model.metrics_names, scores))`) needs, so they are given.
        """
        if self.loss is None:
            return []
        return evaluation_names(self)

    def count_params(self) -> int:
        """Number of parameters (all trainable)."""
        self._ensure_built()
        return int(self._params.size)

    @property
    def weights(self) -> list:
        """Every weight (views into the flat parameters), Keras order."""
        self._ensure_built()
        return [w for layer in self.layers for w in layer.weights]

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of all weights, Keras order: per Dense, kernel (in, out) then bias."""
        return [np.array(backend.to_host(w)) for w in self.weights]

    def save_weights(self, filepath: str, overwrite: bool = True) -> None:
        """Write the weights to `filepath` (`*.weights.h5`) in Keras 3's layout, which Keras's
        `load_weights` reads; `overwrite=False` refuses an existing file."""
        from gpunet.saving import weights_h5

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"save_weights: {filepath} exists and overwrite=False.")
        weights_h5.save(self, filepath)

    def load_weights(self, filepath: str) -> None:
        """Set the weights from a `*.weights.h5` file written by Keras 3 or `save_weights`
        (matched layer by layer, as Keras matches them: by class and position)."""
        from gpunet.saving import weights_h5

        weights_h5.load(self, filepath)

    def set_weights(self, weights) -> None:
        """Copy host arrays into the weights; shapes must match `get_weights()`."""
        targets = self.weights
        if len(weights) != len(targets):
            raise ValueError(
                f"{self.name}: set_weights expects {len(targets)} arrays, received {len(weights)}."
            )
        for i, (target, value) in enumerate(zip(targets, weights)):
            value = np.asarray(backend.to_host(value), dtype=FLOATX)
            if value.shape != target.shape:
                raise ValueError(
                    f"{self.name}: weight {i} must have shape {target.shape}, received "
                    f"{value.shape}."
                )
            backend.copy_to_device(target, value)  # no device temporary

    @property
    def trainable_weights(self) -> list:
        """The weights fit updates: those of trainable layers, less their statistics."""
        self._ensure_built()
        return [
            w
            for layer in self.layers
            if layer.trainable
            for w in layer.weights
            if not any(w is s for s in layer.state().values())
        ]

    @property
    def non_trainable_weights(self) -> list:
        """Weights fit leaves alone: frozen layers' and every layer's statistics."""
        trained = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trained]

    def summary(self, print_fn=None, line_length: int | None = None) -> None:
        """Print Keras 3's table of layers, output shapes and parameter counts (drawn with rich).

        `print_fn` receives the plain text line by line instead (no colours).
        """
        self._ensure_built()
        rows = [
            (
                f"{layer.name} ({type(layer).__name__})",
                str((None,) + layer.output_shape),
                sum(math.prod(s) for _, s, _ in layer.param_specs())
                + sum(int(a.size) for a in layer.state().values()),
            )
            for layer in self.layers
        ]
        total = sum(count for _, _, count in rows)
        frozen = sum(int(w.size) for w in self.non_trainable_weights)  # and statistics
        width = line_length or min(88, shutil.get_terminal_size().columns - 4)
        if print_fn is None:
            console = Console()
        else:  # plain text, captured; wide enough for the table
            console = Console(record=True, file=io.StringIO(), width=width + 4, color_system=None)
        counts = (total - frozen, frozen)
        for renderable in progress.summary_renderables(self.name, rows, counts, width):
            console.print(renderable, highlight=False)
        if print_fn is not None:
            for line in console.export_text().rstrip("\n").split("\n"):
                print_fn(line)
