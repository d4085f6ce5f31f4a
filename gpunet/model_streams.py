"""Sequential's side of data that is not an array (generators, iterators, PyDataset): each
batch checked and converted as array data is, the model built from the first batch."""

from __future__ import annotations

import numpy as np

from gpunet import inputs, streams

FLOATX = inputs.FLOATX


class StreamMethods:
    """Opening a BatchStream for fit, evaluate and predict (mixed into Sequential)."""

    def _open_stream(
        self, data, steps, where: str, targets: bool, class_weight=None
    ) -> streams.BatchStream:
        """A BatchStream over `data` whose batches are checked like array data (targets:
        whether each batch must carry y); its first batch builds the model and metrics."""
        if targets:
            prepare = self._stream_batch(where, class_weight)
        else:
            prepare = self._stream_inputs(where)
        stream = streams.BatchStream(data, steps, where, prepare)
        prepare(*stream.peek(), 0)  # builds the model; a bad first batch fails here
        return stream

    def _stream_batch(self, where: str, class_weight):
        def prepare(x, y, w, index):
            at = f"{where}: batch {index}"
            if y is None:
                raise ValueError(
                    f"{at} has no targets; yield (x, y) or (x, y, sample_weight) batches."
                )
            x, y = self._checked(inputs.host_array(x), inputs.host_array(y), at)
            if w is not None:
                if class_weight is not None:
                    raise ValueError(f"{at}: pass class_weight or sample_weight, not both.")
                w = inputs.check_sample_weight(w, len(x), at)
            elif class_weight is not None:
                w = inputs.class_weights(y, class_weight)
            y_dtype = np.int64 if self.loss.sparse else FLOATX
            return (
                np.ascontiguousarray(x, FLOATX),
                np.ascontiguousarray(y, y_dtype),
                None if w is None else np.ascontiguousarray(w, FLOATX),
            )

        return prepare

    def _stream_inputs(self, where: str):
        def prepare(x, y, w, index):
            at = f"{where}: batch {index}"
            x = inputs.as_array(inputs.host_array(x), f"{at}: x")
            if x.ndim < 2:
                raise ValueError(f"{at}: x must have a batch axis, received shape {x.shape}.")
            self._ensure_built(x.shape[1:])
            self._check_input_shape(x.shape, at)
            inputs.check_finite(x, f"{at}: x")
            return np.ascontiguousarray(x, FLOATX), None, None

        return prepare
