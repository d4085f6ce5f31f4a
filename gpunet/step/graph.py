"""`GraphTraining`: the fused step captured into a CUDA graph once per execution length, then
replayed: one graph launch per execution of `steps_per_execution` steps (Keras's knob), the
progress bar and callbacks running between executions.

A replay reads nothing from the host: the batch position, the dropout offsets and Adam's beta
powers advance in device memory inside the graph; the host writes a device scalar only
between replays, when its value changed (`FusedTraining.sync`). A partial last batch has
another shape, so it runs eagerly. Capture is refused (and training continues eagerly, with a
one-line notice naming why) where the step holds something a graph cannot replay: an
optimizer without a fused kernel (its xp update reads host values), a learning-rate schedule
over several steps of one execution, or GEMMs without cuBLASLt (CuPy's cuBLAS cannot be
captured).
"""

from __future__ import annotations

import logging

from gpunet.cuda import gemm
from gpunet.schedules import LearningRateSchedule
from gpunet.step import updates
from gpunet.step.fused import FusedTraining

logger = logging.getLogger("gpunet")


def unsupported(model, xp) -> str | None:
    """Why the fused step of this model cannot be captured on `xp`, or None (decided before
    the step is built, so it is built once)."""
    if gemm.load(xp) is None:
        return "nvmath-python is not installed: CuPy's cuBLAS GEMMs cannot be captured"
    optimizer = model.optimizer
    if updates.fused_rule(optimizer) is None:
        name = type(optimizer).__name__
        return f"the optimizer {name} (with these options) has no fused update kernel"
    if model.steps_per_execution > 1 and isinstance(optimizer._learning_rate, LearningRateSchedule):
        return "a learning-rate schedule changes the rate inside an execution of several steps"
    return None


class GraphTraining(FusedTraining):
    """FusedTraining with each execution of full batches replayed from a captured graph."""

    name = "graph"

    def __init__(self, model, x, y, w, batch_size: int):
        super().__init__(model, x, y, w, batch_size)
        self._graphs: dict = {}  # (steps, rows) -> the captured graph
        self.captures = 0
        self.eager = False  # set when a capture failed

    def _capture(self, count: int, rows: int):
        stream = self.stream
        stream.begin_capture()
        try:
            for _ in range(count):
                self.enqueue(rows)
        finally:
            graph = stream.end_capture()
        self.captures += 1
        return graph

    def run(self, tracker, first: int, count: int) -> int:
        self.tracker = tracker
        if self.eager:
            return super().run(tracker, first, count)
        full = sum(self._rows(step) == self.batch_size for step in range(first, first + count))
        if full:
            rows = self.batch_size
            with self.stream:
                self.sync(first, rows)
                graph = self._graphs.get((full, rows))
                if graph is None:
                    try:
                        graph = self._graphs[full, rows] = self._capture(full, rows)
                    except Exception as exc:  # nothing captured ran: train on, eagerly
                        logger.warning(
                            "gpunet: capturing the step into a CUDA graph failed (%s: %s); the "
                            "fused step runs eagerly for the rest of the fit.",
                            type(exc).__name__, exc,
                        )  # fmt: skip
                        self.eager = True
                        return super().run(tracker, first, count)
                graph.launch(self.stream)
            for _ in range(full):
                self.account(rows)
        if full < count:  # the epoch's partial last batch
            super().run(tracker, first + full, count - full)
        return count
