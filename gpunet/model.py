"""`Sequential`: a stack of layers trained with Keras 3's compile/fit/evaluate/predict semantics.

All parameters live in one flat float32 vector on the active backend, each layer holding views
of it (and of the flat gradient), so an optimizer updates the whole model in a few calls.
Data crosses the host/device edge once per fit (in) and once per result (out).
"""

from __future__ import annotations

import io
import math
import shutil

import numpy as np
from rich.console import Console

from gpunet import backend, checkpoint, inputs, losses, naming, optimizers, progress, rng
from gpunet import callbacks as callbacks_module
from gpunet import metrics as metrics_module
from gpunet.layers import Dropout, InputLayer, Layer, _Activated

FLOATX = inputs.FLOATX


class Sequential:
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
        self._metric_ids: list = []
        self._metrics: list | None = None
        self.stop_training = False
        self.interrupted = False  # set by a callback that checkpointed mid-epoch and stops
        self.history = None
        self._pending_resume = None
        self._fit_progress = None
        self._callbacks = []
        self._loss_total, self._seen = 0.0, 0
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
            if isinstance(layer, Dropout):
                layer.generator = rng.device_generator(xp, layer.seed)
        sizes = [math.prod(s) for _, s, _ in specs]
        host = np.empty(sum(sizes), dtype=FLOATX)
        self._segments, start = [], 0
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
        self._batch_buffers: dict = {}
        if self.optimizer is not None:
            self.optimizer.build(self._params, self._segments)

    def _ensure_built(self, data_shape: tuple | None = None) -> None:
        if not self.built:
            if self._input_shape is None and data_shape is not None:
                self._input_shape = tuple(data_shape)
            self.build()

    def count_params(self) -> int:
        """Number of parameters (all trainable)."""
        self._ensure_built()
        return int(self._params.size)

    @property
    def weights(self) -> list:
        self._ensure_built()
        return [w for layer in self.layers for w in layer.weights]

    def get_weights(self) -> list[np.ndarray]:
        """Host copies of all weights, Keras order: per Dense, kernel (in, out) then bias."""
        return [np.array(backend.to_host(w)) for w in self.weights]

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
            target[...] = backend.to_device(value, FLOATX)

    def summary(self, print_fn=None, line_length: int | None = None) -> None:
        """Print Keras 3's table of layers, output shapes and parameter counts (drawn with rich).

        `print_fn` receives the plain text line by line instead (no colours).
        """
        self._ensure_built()
        rows = [
            (
                f"{layer.name} ({type(layer).__name__})",
                str((None,) + layer.output_shape),
                sum(math.prod(s) for _, s, _ in layer.param_specs()),
            )
            for layer in self.layers
        ]
        width = line_length or min(88, shutil.get_terminal_size().columns - 4)
        if print_fn is None:
            console = Console()
        else:  # plain text, captured; wide enough for the table
            console = Console(record=True, file=io.StringIO(), width=width + 4, color_system=None)
        for renderable in progress.summary_renderables(self.name, rows, self.count_params(), width):
            console.print(renderable, highlight=False)
        if print_fn is not None:
            for line in console.export_text().rstrip("\n").split("\n"):
                print_fn(line)

    # ----- compile -----------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None) -> None:
        """Set the optimizer (default "rmsprop", as Keras), the loss and the metrics."""
        self.optimizer = optimizers.get(optimizer)
        self.loss = None if loss is None else losses.get(loss)
        metric_ids = list(metrics or [])
        for identifier in metric_ids:
            metrics_module.check_name(identifier)
        self._metric_ids = metric_ids
        self._metrics = None
        if self.built:
            self.optimizer.build(self._params, self._segments)

    def _fused_loss(self) -> bool:
        """Whether the loss is computed from the last layer's logits (softmax/sigmoid + CE)."""
        last = self.layers[-1]
        fusable = self.loss.fusable_activation
        return (
            fusable is not None
            and not getattr(self.loss, "from_logits", False)
            and isinstance(last, _Activated)
            and last.activation.name == fusable
        )

    def _prepare(self, x, y, where: str):
        """Validate x/y, build what is missing, and bring them to the device as float32."""
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(
                f"{self.name}: call compile(optimizer=..., loss=...) before {where}()."
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
        inputs.check_finite(x, f"{where}: x")
        inputs.check_finite(y, f"{where}: y")
        if self._metrics is None:
            out_shape = (None,) + self.layers[-1].output_shape
            self._metrics = [metrics_module.get(m, y.shape, out_shape) for m in self._metric_ids]
        self._fused = self._fused_loss()
        self._regularized = [layer for layer in self.layers if layer.regularized]
        y_dtype = "int64" if self.loss.sparse else FLOATX
        return backend.to_device(x, FLOATX), backend.to_device(y, y_dtype)

    def _check_input_shape(self, shape: tuple, where: str) -> None:
        if tuple(shape[1:]) != self._input_shape:
            expected = (None,) + self._input_shape
            raise ValueError(
                f'{where}: input of model "{self.name}" is incompatible: expected shape '
                f"{expected}, received {tuple(shape)}."
            )

    # ----- the step ----------------------------------------------------------------------------

    def _forward(self, x, training: bool, logits: bool = False):
        """The model's output; with logits=True, the last layer's pre-activation instead."""
        *body, last = self.layers
        for layer in body:
            x = layer.forward(x, training)
        return last.forward(x, training, activate=False) if logits else last.forward(x, training)

    def _penalty(self):
        terms = [p for p in (layer.penalty() for layer in self._regularized) if p is not None]
        return sum(terms[1:], terms[0]) if terms else None

    def _forward_loss(self, x, y_true, weights, training: bool, with_grad: bool, scale=1.0):
        """Forward and loss on one batch: (loss as an xp scalar with penalties, y_pred, and if
        asked d loss / d output, or d loss / d logits when the loss is fused, times `scale`)."""
        out = self._forward(x, training, logits=self._fused)
        n = out.shape[0]
        # "sum_over_batch_size": each sample's gradient is scaled by its weight / N.
        grad = None
        if self._fused:
            y_pred = self._batch_buffer("y_pred", out, n)
            if with_grad:
                grad = self._batch_buffer("grad", out, n)
            per_sample = self.loss.fused(y_true, out, y_pred, grad, scale / n)
        else:
            y_pred = out
            per_sample = self.loss.per_sample(y_true, y_pred)
            if with_grad:
                grad = self.loss.grad(y_true, y_pred)  # a new array: scaled in place
                grad *= scale / n
        if weights is not None:
            per_sample = per_sample * weights
            if grad is not None:
                grad *= weights.reshape((n,) + (1,) * (grad.ndim - 1))
        value = per_sample.sum() / n
        penalty = self._penalty()
        if penalty is not None:
            value = value + penalty
        return value, y_pred, grad

    def _compute_gradients(self, x, y, weights, scale=1.0):
        """Forward and backward on one batch: fills the flat gradient (times `scale`); returns
        (loss, y_pred)."""
        value, y_pred, grad = self._forward_loss(x, y, weights, True, True, scale)
        last = self.layers[-1]
        grad = last.backward(grad, from_logits=True) if self._fused else last.backward(grad)
        for layer in reversed(self.layers[:-1]):
            if grad is None:
                break
            grad = layer.backward(grad)
        return value, y_pred

    def _train_step(self, x, y, weights):
        # Regularizers add their gradients unscaled, so they keep the optimizer's plain path.
        scale = None if self._regularized else self.optimizer.gradient_scale()
        value, y_pred = self._compute_gradients(x, y, weights, 1.0 if scale is None else scale)
        self.optimizer.apply(self._params, self._grads, prescaled=scale is not None)
        return value, y_pred

    # ----- fit / evaluate / predict -------------------------------------------------------------

    def _batches(self, n: int, batch_size: int):
        return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]

    def _batch_buffer(self, key: str, source, rows: int):
        shape = (rows,) + source.shape[1:]
        buffer = self._batch_buffers.get((key, shape))
        if buffer is None:
            buffer = backend.get_array_module(source).empty(shape, dtype=source.dtype)
            self._batch_buffers[(key, shape)] = buffer
        return buffer

    def _reset_tracking(self):
        self._loss_total, self._seen = 0.0, 0
        for metric in self._metrics:
            metric.reset_state()

    def _track(self, value, y, y_pred, weights):
        n = y_pred.shape[0]
        self._loss_total = self._loss_total + value * n
        self._seen += n
        for metric in self._metrics:
            metric.update_state(y, y_pred, weights)

    def _result_readers(self, prefix: str = "") -> dict:
        """Log name -> a function reading its value: the batch-size-weighted mean loss, then each
        metric. Each call is a host sync on the GPU."""
        readers = {prefix + "loss": lambda: float(self._loss_total) / max(self._seen, 1)}
        for metric in self._metrics:
            readers[prefix + metric.name] = metric.result
        return readers

    def _results(self, prefix: str = "") -> dict:
        """Epoch logs: every value of `_result_readers`, read now."""
        return {name: read() for name, read in self._result_readers(prefix).items()}

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs: int = 1,
        verbose="auto",
        callbacks=None,
        validation_split: float = 0.0,
        validation_data=None,
        shuffle: bool = True,
        class_weight: dict | None = None,
        sample_weight=None,
        initial_epoch: int = 0,
        validation_batch_size=None,
        validation_freq: int = 1,
    ):
        """Train for `epochs` epochs; returns a `History` (Keras 3 semantics, see README)."""
        batch_size = inputs.check_batch_size(batch_size)
        for name, value, low in (
            ("epochs", epochs, 0),
            ("initial_epoch", initial_epoch, 0),
            ("validation_freq", validation_freq, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"fit: {name} must be an int >= {low}, received {value!r}.")
        if verbose == "auto":
            verbose = 1
        if verbose not in (0, 1, 2):
            raise ValueError(f"fit: verbose must be 0, 1, 2 or 'auto', received {verbose!r}.")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(
                f"fit: validation_split must be in [0, 1), received {validation_split!r}."
            )
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: pass class_weight or sample_weight, not both.")
        x_host = inputs.as_array(x, "fit: x")
        y_host = inputs.as_array(y, "fit: y")
        if sample_weight is not None:
            sample_weight = inputs.check_sample_weight(sample_weight, len(x_host), "fit")
        elif class_weight is not None:
            sample_weight = inputs.class_weights(y_host, class_weight)

        # validation_split takes the LAST fraction, before any shuffling (Keras).
        if validation_data is None and validation_split:
            split_at = int(math.floor(len(x_host) * (1.0 - validation_split)))
            if split_at == 0 or split_at == len(x_host):
                raise ValueError(
                    f"fit: validation_split={validation_split} of {len(x_host)} samples leaves "
                    "an empty training or validation part."
                )
            validation_data = (x_host[split_at:], y_host[split_at:])
            if sample_weight is not None:
                validation_data += (sample_weight[split_at:],)
                sample_weight = sample_weight[:split_at]
            x_host, y_host = x_host[:split_at], y_host[:split_at]

        x_dev, y_dev = self._prepare(x_host, y_host, "fit")
        w_dev = None if sample_weight is None else backend.to_device(sample_weight, FLOATX)
        val = None
        if validation_data is not None:
            val = self._validation_arrays(validation_data)
        val_batch_size = inputs.check_batch_size(validation_batch_size or batch_size)

        n = len(x_dev)
        batches = self._batches(n, batch_size)
        # Keras's order: the user's callbacks, then History (so it records what they add to
        # the logs, e.g. learning_rate), then the progress bar.
        user = list(callbacks or [])
        history = callbacks_module.History()
        defaults = [history]
        if verbose and not any(isinstance(c, callbacks_module.ProgbarLogger) for c in user):
            defaults.append(callbacks_module.ProgbarLogger(verbose))
        params = {"verbose": verbose, "epochs": epochs, "steps": len(batches)}
        hooks = callbacks_module.CallbackList(user + defaults, self, params)
        xp = backend.xp()
        self.stop_training = self.interrupted = False
        self._reset_tracking()
        self._callbacks = user  # their states go into checkpoints
        hooks.on_train_begin({})
        progress = self._start_progress(initial_epoch, history, user)
        batch_end = hooks.has("on_train_batch_end")
        readers = self._result_readers()
        # A diverging run overflows to inf/NaN: TerminateOnNaN and the logs report it, rather
        # than a NumPy warning from every ufunc.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for epoch in range(progress.epoch, epochs):
                progress.epoch = epoch
                if progress.step == 0:  # a fresh epoch (else one resumed from a checkpoint)
                    self._reset_tracking()
                    progress.order = progress.shuffle_rng.permutation(n) if shuffle else None
                order = None if progress.order is None else backend.to_device(progress.order)
                hooks.on_epoch_begin(epoch, {})
                for step in range(progress.step, len(batches)):
                    start, stop = batches[step]
                    hooks.on_train_batch_begin(step, {})
                    xb, yb, wb = self._batch(x_dev, y_dev, w_dev, order, start, stop, xp)
                    value, y_pred = self._train_step(xb, yb, wb)
                    self._track(value, yb, y_pred, wb)
                    progress.step = step + 1
                    if batch_end:
                        hooks.on_train_batch_end(step, callbacks_module.LazyLogs(readers))
                    if self.stop_training:
                        break
                if self.interrupted:  # a checkpoint holds the partial epoch; no epoch end
                    break
                logs = self._results()
                if val is not None and (epoch + 1) % validation_freq == 0:
                    logs.update(self._evaluate_arrays(*val, val_batch_size, prefix="val_"))
                progress.epoch, progress.step, progress.order = epoch + 1, 0, None
                hooks.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        hooks.on_train_end({})
        self._fit_progress = None
        history.model = self
        self.history = history
        history.params = params
        return history

    def _start_progress(self, initial_epoch: int, history, callbacks) -> checkpoint.FitProgress:
        """Where this fit starts: `initial_epoch`, or a checkpoint handed over by `resume_from`
        (or by a BackupAndRestore callback in on_train_begin)."""
        progress = checkpoint.FitProgress(
            initial_epoch, shuffle_rng=rng.host_generator(), history=history.history
        )
        if self._pending_resume is not None:
            arrays, meta, path = self._pending_resume
            self._pending_resume = None
            progress = checkpoint.restore(self, arrays, meta, callbacks, path)
            history.history.update(progress.history)
            progress.history = history.history
            history.epoch = list(range(len(next(iter(history.history.values()), []))))
        self._fit_progress = progress
        return progress

    def resume_from(self, path: str) -> None:
        """Make the next `fit` continue the training saved in checkpoint `path` exactly
        (weights, optimizer, generators, the epoch's position, history, callback states)."""
        arrays, meta = checkpoint.load(path)
        self._pending_resume = (arrays, meta, path)

    def save_checkpoint(self, path: str, config: dict | None = None, epoch_logs=None) -> None:
        """Write the full training state (during or after `fit`) to `path`, atomically.

        From a callback's on_epoch_end, pass that epoch's logs as `epoch_logs`: History records
        them only after the user's callbacks have run.
        """
        progress = self._fit_progress or checkpoint.FitProgress(
            len(self.history.epoch) if self.history else 0,
            history=self.history.history if self.history else {},
        )
        checkpoint.save(path, self, progress, self._callbacks, config, epoch_logs)

    def _batch(self, x, y, w, order, start, stop, xp):
        """The batch [start, stop) of the epoch: slices (views) unshuffled, gathered otherwise."""
        if order is None:
            return x[start:stop], y[start:stop], None if w is None else w[start:stop]
        rows = stop - start
        idx = order[start:stop]
        xb = inputs.gather(xp, x, idx, self._batch_buffer("x", x, rows))
        yb = inputs.gather(xp, y, idx, self._batch_buffer("y", y, rows))
        wb = None if w is None else inputs.gather(xp, w, idx, self._batch_buffer("w", w, rows))
        return xb, yb, wb

    def _validation_arrays(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "fit: validation_data must be a tuple (x_val, y_val[, sample_weight])."
            )
        xv, yv = self._prepare(validation_data[0], validation_data[1], "fit: validation_data")
        wv = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            wv = inputs.check_sample_weight(validation_data[2], len(xv), "fit: validation_data")
            wv = backend.to_device(wv, FLOATX)
        return xv, yv, wv

    def _evaluate_arrays(self, x, y, w, batch_size: int, prefix: str = "") -> dict:
        self._reset_tracking()
        for start, stop in self._batches(len(x), batch_size):
            wb = None if w is None else w[start:stop]
            value, y_pred, _ = self._forward_loss(x[start:stop], y[start:stop], wb, False, False)
            self._track(value, y[start:stop], y_pred, wb)
        return self._results(prefix)

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        return_dict: bool = False,
    ):
        """Loss and metrics on (x, y): a float if no metrics, else [loss, *metrics]."""
        batch_size = inputs.check_batch_size(batch_size)
        x_dev, y_dev = self._prepare(x, y, "evaluate")
        w_dev = None
        if sample_weight is not None:
            w_dev = backend.to_device(
                inputs.check_sample_weight(sample_weight, len(x_dev), "evaluate"), FLOATX
            )
        logs = self._evaluate_arrays(x_dev, y_dev, w_dev, batch_size)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto") -> np.ndarray:
        """Model outputs for x (dropout off), computed in batches; a host float32 array."""
        batch_size = inputs.check_batch_size(batch_size)
        x = inputs.as_array(x, "predict: x")
        if x.ndim < 2:
            raise ValueError(f"predict: x must have a batch axis, received shape {x.shape}.")
        self._ensure_built(x.shape[1:])
        self._check_input_shape(x.shape, "predict")
        inputs.check_finite(x, "predict: x")
        x_dev = backend.to_device(x, FLOATX)
        out = np.empty((len(x_dev),) + self.layers[-1].output_shape, dtype=FLOATX)
        for start, stop in self._batches(len(x_dev), batch_size):
            out[start:stop] = backend.to_host(self._forward(x_dev[start:stop], training=False))
        return out

    def __repr__(self) -> str:
        return f"<Sequential name={self.name!r}, {len(self.layers)} layers>"
