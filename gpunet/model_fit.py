"""Sequential's `fit`: Keras 3's arguments checked, the data prepared (arrays brought to the
device once, or a BatchStream over a generator or PyDataset), then the trainer's epochs; and
the checkpoints that resume a fit exactly."""

from __future__ import annotations

import math

from gpunet import backend, checkpoint, inputs, streams
from gpunet import callbacks as callbacks_module
from gpunet.messages import excerpt

FLOATX = inputs.FLOATX


class FitMethods:
    """Mixed into Sequential, which provides `_prepare`, `_open_stream`, `_get_trainer`."""

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
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq: int = 1,
    ):
        """Train for `epochs` epochs; returns a `History` (Keras 3 semantics, see README).

        x may be arrays (with y), or a generator, iterator or `gn.utils.PyDataset` of
        (x, y[, sample_weight]) batches (y None); steps_per_epoch then sets the batches per
        epoch (default: until the data runs out), validation_steps likewise for a
        validation_data of that kind.
        """
        batch_size = inputs.check_batch_size(batch_size)
        steps_per_epoch = streams.check_steps(steps_per_epoch, "fit: steps_per_epoch")
        validation_steps = streams.check_steps(validation_steps, "fit: validation_steps")
        for name, value, low in (
            ("epochs", epochs, 0),
            ("initial_epoch", initial_epoch, 0),
            ("validation_freq", validation_freq, 1),
        ):
            if not inputs.is_int(value) or value < low:
                raise ValueError(f"fit: {name} must be an int >= {low}, received {value!r}.")
        epochs, initial_epoch, validation_freq = (
            int(epochs),
            int(initial_epoch),
            int(validation_freq),
        )
        if callbacks is not None and (
            not isinstance(callbacks, (list, tuple))
            or not all(isinstance(c, callbacks_module.Callback) for c in callbacks)
        ):
            raise ValueError(
                f"fit: callbacks must be a list of Callback objects, received {excerpt(callbacks)}."
            )
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
        if streams.is_stream(validation_data):
            validation_data = self._open_stream(
                validation_data, validation_steps, "fit: validation_data", targets=True
            )
            if (
                validation_steps is None
                and not validation_data.restartable
                and epochs - initial_epoch > 1
            ):
                raise ValueError(
                    "fit: validation_data is a generator without validation_steps: the first "
                    "validation would use it up. Give validation_steps (it then feeds every "
                    "validation), or a PyDataset or an iterable that can start over."
                )
        if streams.is_stream(x):
            for name, value in (("y", y), ("sample_weight", sample_weight)):
                if value is not None:
                    raise ValueError(
                        f"fit: x is a {type(x).__name__}: {name} must be None (the batches "
                        "carry it: yield (x, y) or (x, y, sample_weight))."
                    )
            if validation_split:
                raise ValueError(
                    "fit: validation_split needs array data; with a generator or PyDataset, "
                    "pass validation_data."
                )
            data = self._open_stream(x, steps_per_epoch, "fit: x", True, class_weight)
            return self._run_fit(
                data, validation_data, batch_size, epochs, verbose, callbacks, shuffle,
                initial_epoch, validation_batch_size, validation_freq,
            )  # fmt: skip
        if steps_per_epoch is not None:
            raise ValueError(
                "fit: steps_per_epoch is for a generator or PyDataset; with arrays an epoch is "
                "every batch of x (batch_size sets how many)."
            )
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
        return self._run_fit(
            (x_dev, y_dev, w_dev), validation_data, batch_size, epochs, verbose, callbacks,
            shuffle, initial_epoch, validation_batch_size, validation_freq,
        )  # fmt: skip

    def _run_fit(self, data, validation_data, batch_size: int, epochs: int, *rest):
        """The trainer's fit on prepared `data`, validation arrays brought to the device."""
        verbose, callbacks, shuffle, initial_epoch, validation_batch_size, validation_freq = rest
        val = validation_data
        if validation_data is not None and not isinstance(validation_data, streams.BatchStream):
            val = self._validation_arrays(validation_data)
        val_batch_size = inputs.check_batch_size(validation_batch_size or batch_size)
        self.reset_metrics()  # as Keras: the *_on_batch running means start afresh
        history = self._get_trainer().fit(
            data, val, batch_size, epochs, verbose, callbacks, shuffle, initial_epoch,
            val_batch_size, validation_freq,
        )  # fmt: skip
        self.history = history
        return history

    def resume_from(self, path: str) -> int:
        """Make the next `fit` continue the training saved in checkpoint `path` exactly
        (weights, optimizer, generators, the epoch's position, history, callback states);
        returns the number of whole epochs the checkpoint holds."""
        arrays, meta = checkpoint.load(path)
        if self.built:  # else `fit` checks it once the model is built
            checkpoint.check_fits(self, arrays, meta, path)
        self._pending_resume = (arrays, meta, path)
        return meta["epoch"]

    def save_checkpoint(self, path: str, config: dict | None = None, epoch_logs=None) -> None:
        """Write the full training state (during or after `fit`) to `path`, atomically.

        From a callback's on_epoch_end, pass that epoch's logs as `epoch_logs`: History records
        them only after the user's callbacks have run.
        """
        trainer = self._trainer
        progress = trainer.progress if trainer is not None else None
        tracker = trainer.tracker if progress is not None else None
        if progress is None:
            progress = checkpoint.FitProgress(
                len(self.history.epoch) if self.history else 0,
                history=self.history.history if self.history else {},
            )
        checkpoint.save(path, self, progress, tracker, self._callbacks, config, epoch_logs)

    @property
    def _fit_progress(self):
        """Where the running fit is (None outside fit)."""
        return None if self._trainer is None else self._trainer.progress

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
