"""`Sequential`: a stack of layers trained with Keras 3's compile/fit/evaluate/predict semantics.

All parameters live in one flat float32 vector on the active backend, each layer holding views
of it (and of the flat gradient), so an optimizer updates the whole model in a few calls.
Array data crosses the host/device edge once per fit (in) and once per result (out); a
generator's batches cross one by one, each copied while the one before trains (uploads.py).
Fit lives in model_fit.py; layer access, per-batch calls, configs and streams in the other
model_* mixins.
"""

from __future__ import annotations

import math
import os

import numpy as np

from gpunet import backend, distributed, inputs, losses, naming, optimizers, streams
from gpunet import callbacks as callbacks_module
from gpunet import metrics as metrics_module
from gpunet.layers import InputLayer, Layer
from gpunet.model_batches import BatchMethods
from gpunet.model_config import ConfigMethods
from gpunet.model_fit import FitMethods
from gpunet.model_layers import LayerAccess
from gpunet.model_streams import StreamMethods
from gpunet.trainer import Trainer

FLOATX = inputs.FLOATX


def _check_fits_in_memory(name: str, count: int) -> None:
    """Refuse a model whose parameters alone exceed the host's memory, before allocating (an
    overcommitting OS would grant the array and kill the process while filling it)."""
    needed = count * np.dtype(FLOATX).itemsize * 2  # parameters and gradients
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: let allocation decide
        return
    if needed > memory:
        raise MemoryError(
            f"{name}: {count:,} parameters need {needed / 2**30:,.1f} GiB (with their "
            f"gradients); this machine has {memory / 2**30:,.1f} GiB. Use fewer units."
        )


def _progbar(verbose, where: str):
    """The bar evaluate and predict draw: verbose "auto" and 1 a live bar (the plain line off a
    terminal), 2 the plain line, 0 nothing."""
    if verbose == "auto":
        verbose = 1
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"{where}: verbose must be 0, 1, 2 or 'auto', received {verbose!r}.")
    if not distributed.world().writes:
        return None  # an MPI job's rank 0 draws the bar for every rank
    return callbacks_module.ProgbarLogger(verbose) if verbose else None


class Sequential(LayerAccess, FitMethods, BatchMethods, ConfigMethods, StreamMethods):
    """A linear stack of layers.

    Args:
        layers: list of layers; may start with `Input(shape)`.
        name: model name; "sequential", "sequential_1", ... by default.
    """

    def __init__(self, layers=None, name: str | None = None):
        self.name = name or naming.unique_name("sequential")
        self.layers: list[Layer] = []
        self._input_shape: tuple[int, ...] | None = None
        self._params = self._grads = None
        self.optimizer = self.loss = None
        self.steps_per_execution, self.cuda_graphs, self.precision = 1, True, "float32"
        self._metric_ids: list = []
        self._metrics: list | None = None
        self.stop_training = False
        self.interrupted = False  # set by a callback that checkpointed mid-epoch and stops
        self.history = None
        self._pending_resume = None
        self._trainer: Trainer | None = None  # made on first fit/evaluate/predict after compile
        self._callbacks = []
        for layer in layers or []:
            self.add(layer)

    # ----- structure -------------------------------------------------------------------------

    def add(self, layer: Layer) -> None:
        """Append a layer (an `Input` may only come first)."""
        if isinstance(layer, InputLayer):
            if self.layers or self._input_shape is not None:
                raise ValueError(f"{self.name}: an Input can only be the first entry of the model.")
            self._input_shape = layer.declared_input_shape
            return
        if not isinstance(layer, Layer):
            raise TypeError(
                f"{self.name}: add() expects a gpunet layer, received {type(layer).__name__}."
            )
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"{self.name}: a layer named {layer.name!r} is already in the model.")
        if not self.layers and self._input_shape is None:
            self._input_shape = layer.declared_input_shape
        self.layers.append(layer)
        self._params = None  # (re)built on next use
        self._trainer = None

    @property
    def built(self) -> bool:
        return self._params is not None

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + self._input_shape

    @property
    def output_shape(self):
        self._ensure_built()
        return (None,) + self.layers[-1].output_shape

    def build(self, input_shape=None) -> None:
        """Create and initialise the parameters; `input_shape` with or without the batch axis."""
        if input_shape is not None:
            shape = tuple(input_shape)
            if shape and shape[0] is None:
                shape = shape[1:]
            self._input_shape = shape
        if self._input_shape is None:
            raise ValueError(
                f"{self.name}: the input shape is unknown. Start the model with "
                "gn.layers.Input((features,)) or pass input_shape to the first layer."
            )
        if not self.layers:
            raise ValueError(f"{self.name}: the model has no layers; add some first.")
        xp = backend.xp()
        shape = self._input_shape
        specs = []  # (layer, shape, initializer)
        has_params_before = False
        for layer in self.layers:
            shape = layer.build(shape)
            layer.need_input_grad = has_params_before
            layer_specs = layer.param_specs()
            has_params_before = has_params_before or bool(layer_specs)
            specs.extend((layer, s[1], s[2]) for s in layer_specs)
        sizes = [math.prod(s) for _, s, _ in specs]
        _check_fits_in_memory(self.name, sum(sizes))
        host = np.empty(sum(sizes), dtype=FLOATX)
        self._segments, start = [], 0
        self._segment_owners = [owner for owner, _, _ in specs]
        self._segment_shapes = [shape_ for _, shape_, _ in specs]
        for (_, shape_, initializer), size in zip(specs, sizes):
            host[start : start + size] = initializer(shape_, FLOATX).reshape(-1)
            self._segments.append((start, start + size))
            start += size
        self._params = backend.to_device(host, FLOATX)
        self._grads = xp.zeros_like(self._params)
        for layer in self.layers:
            views = [
                (self._params[a:b].reshape(shape_), self._grads[a:b].reshape(shape_))
                for (owner, shape_, _), (a, b) in zip(specs, self._segments)
                if owner is layer
            ]
            layer.bind([p for p, _ in views], [g for _, g in views])
        self._trainer = None
        if self.optimizer is not None:
            self.optimizer.build(self._params, self._segments)

    def _frozen_segments(self) -> list[tuple[int, int]]:
        """The flat-buffer spans of the parameters of layers set `trainable = False`."""
        self._ensure_built()
        return [
            span for owner, span in zip(self._segment_owners, self._segments) if not owner.trainable
        ]

    def _ensure_built(self, data_shape: tuple | None = None) -> None:
        if not self.built:
            if self._input_shape is None and data_shape is not None:
                self._input_shape = tuple(data_shape)
            self.build()

    # ----- compile -----------------------------------------------------------------------------

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        metrics=None,
        steps_per_execution: int = 1,
        cuda_graphs: bool = True,
        precision: str = "float32",
    ) -> None:
        """Set the optimizer (default "rmsprop", as Keras), the loss and the metrics.

        steps_per_execution: steps run between callback and progress calls (Keras's knob); on
        CuPy, one CUDA graph replay each. cuda_graphs: False keeps the fused CuPy step eager
        (for debugging); no effect on NumPy. precision: "float32" (exact, the default), "tf32"
        or "bf16" (the fused CuPy step's GEMMs take their inputs rounded to TF32 or bfloat16
        on the tensor cores; float32 master weights, accumulation and updates; for large
        layers; no effect on NumPy).
        """
        if precision not in ("float32", "tf32", "bf16"):
            raise ValueError(
                f"compile: precision must be 'float32', 'tf32' or 'bf16', received {precision!r}."
            )
        if (
            isinstance(steps_per_execution, bool)
            or not isinstance(steps_per_execution, int)
            or steps_per_execution < 1
        ):
            raise ValueError(
                f"compile: steps_per_execution must be an int >= 1, received "
                f"{steps_per_execution!r}."
            )
        if not isinstance(cuda_graphs, bool):
            raise TypeError(
                f"compile: cuda_graphs must be True or False, received {cuda_graphs!r}."
            )
        self.steps_per_execution, self.cuda_graphs = steps_per_execution, cuda_graphs
        self.precision = precision
        self.optimizer = optimizers.get(optimizer)
        self.loss = None if loss is None else losses.get(loss)
        metric_ids = list(metrics or [])
        for identifier in metric_ids:
            metrics_module.check_name(identifier)
        self._metric_ids = metric_ids
        self._metrics = None
        self._trainer = None
        if self.built:
            self.optimizer.build(self._params, self._segments)

    def _prepare(self, x, y, where: str):
        """Validate x/y, build what is missing, and bring them to the device as float32."""
        x, y = self._checked(x, y, where)
        y_dtype = "int64" if self.loss.sparse else FLOATX
        return backend.to_device(x, FLOATX), backend.to_device(y, y_dtype)

    def _checked(self, x, y, where: str):
        """x and y validated (the model built and the metrics made on first use), in their own
        array module; (N,) targets of a one-unit output made (N, 1)."""
        if self.loss is None or self.optimizer is None:
            call = where.split(":")[0]
            raise RuntimeError(
                f"{self.name}: call compile(optimizer=..., loss=...) before {call}()."
            )
        x = inputs.as_array(x, f"{where}: x")
        y = inputs.as_array(y, f"{where}: y")
        if x.ndim < 2:
            raise ValueError(
                f"{where}: x must have a batch axis, shape (N, features...); received {x.shape}."
            )
        self._ensure_built(x.shape[1:])
        self._check_input_shape(x.shape, where)
        if len(x) != len(y):
            raise ValueError(
                f"{where}: x and y must have the same number of samples, received {len(x)} and "
                f"{len(y)}."
            )
        if len(x) == 0:
            raise ValueError(f"{where}: x is empty.")
        self.loss.check_targets(y, self.layers[-1].output_shape, where)
        if y.ndim == 1 and not self.loss.sparse:
            y = y.reshape(-1, 1)  # (N,) targets of a one-unit output, as Keras expands them
        inputs.check_finite(x, f"{where}: x")
        inputs.check_finite(y, f"{where}: y")
        if self._metrics is None:
            out_shape = (None,) + self.layers[-1].output_shape
            self._metrics = [metrics_module.get(m, y.shape, out_shape) for m in self._metric_ids]
        return x, y

    def _check_input_shape(self, shape: tuple, where: str) -> None:
        if tuple(shape[1:]) != self._input_shape:
            expected = (None,) + self._input_shape
            raise ValueError(
                f'{where}: input of model "{self.name}" is incompatible: expected shape '
                f"{expected}, received {tuple(shape)}."
            )

    # ----- evaluate / predict (fit: model_fit.py) ----------------------------------------------

    def _get_trainer(self) -> Trainer:
        if self._trainer is None:
            self._trainer = Trainer(self)
        return self._trainer

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        return_dict: bool = False,
    ):
        """Loss and metrics on (x, y), or on the batches of a generator or PyDataset x
        (`steps` of them, default all): a float if no metrics, else [loss, *metrics]."""
        batch_size = inputs.check_batch_size(batch_size)
        progbar = _progbar(verbose, "evaluate")
        steps = streams.check_steps(steps, "evaluate: steps")
        if streams.is_stream(x):
            if y is not None or sample_weight is not None:
                raise ValueError(
                    f"evaluate: x is a {type(x).__name__}: y and sample_weight must be None "
                    "(the batches carry them)."
                )
            data = self._open_stream(x, steps, "evaluate: x", targets=True)
        else:
            x_dev, y_dev = self._prepare(x, y, "evaluate")
            w_dev = None
            if sample_weight is not None:
                w_dev = backend.to_device(
                    inputs.check_sample_weight(sample_weight, len(x_dev), "evaluate"), FLOATX
                )
            data = (x_dev, y_dev, w_dev)
        self.reset_metrics()
        logs = self._get_trainer().evaluate(data, batch_size, progbar=progbar)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None) -> np.ndarray:
        """Model outputs for x (dropout off), computed in batches; a host float32 array. x may
        be a generator or PyDataset of x, (x,) or (x, y) batches (`steps` of them)."""
        batch_size = inputs.check_batch_size(batch_size)
        progbar = _progbar(verbose, "predict")
        steps = streams.check_steps(steps, "predict: steps")
        if streams.is_stream(x):
            data = self._open_stream(x, steps, "predict: x", targets=False)
            return self._get_trainer().predict(data, batch_size, progbar)
        x = inputs.as_array(x, "predict: x")
        if x.ndim < 2:
            raise ValueError(f"predict: x must have a batch axis, received shape {x.shape}.")
        self._ensure_built(x.shape[1:])
        self._check_input_shape(x.shape, "predict")
        inputs.check_finite(x, "predict: x")
        return self._get_trainer().predict(backend.to_device(x, FLOATX), batch_size, progbar)

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r}, {len(self.layers)} layers>"
