"""The training step, chosen once per fit: the xp reference step (NumPy, and CuPy where the
fused step cannot take the model), the fused CuPy step (kernels and cuBLASLt GEMMs), or that
step captured into CUDA graphs, one replay per execution.

Where CuPy trains without the fastest route, a one-line notice on the `gpunet` logger says
why: never silently.
"""

from __future__ import annotations

import logging

import numpy as np

from gpunet import backend
from gpunet.step.reference import ReferenceStep
from gpunet.step.training import ReferenceTraining

__all__ = ["ReferenceStep", "ReferenceTraining", "select_training"]

logger = logging.getLogger("gpunet")


def select_training(model, step: ReferenceStep, x, y, w, batch_size: int):
    """The training step for this fit: GraphTraining, FusedTraining or ReferenceTraining."""
    if backend.get_array_module(x) is np:
        return ReferenceTraining(step, x, y, w, batch_size)
    from gpunet.cuda import gemm
    from gpunet.step import fused, graph, support

    xp = backend.get_array_module(x)
    reason = support.unsupported(model, x) or _empty_shard(step.world, len(x), batch_size)
    if reason is not None:
        logger.warning("gpunet: the reference CuPy step trains this model: %s.", reason)
        return ReferenceTraining(step, x, y, w, batch_size)
    if model.precision != "float32" and gemm.load(xp) is None:
        logger.warning(
            "gpunet: precision %r needs cuBLASLt (nvmath-python); computing in float32.",
            model.precision,
        )
    if not model.cuda_graphs:
        return fused.FusedTraining(model, x, y, w, batch_size)
    reason = graph.unsupported(model, xp)
    if reason is not None:
        logger.warning("gpunet: no CUDA graph, the fused step runs eagerly: %s.", reason)
        return fused.FusedTraining(model, x, y, w, batch_size)
    return graph.GraphTraining(model, x, y, w, batch_size)


def _empty_shard(world, n: int, batch_size: int) -> str | None:
    """Why a rank would have no rows in some batch (the fused kernels take no empty batch)."""
    last = n % batch_size
    if 0 < last < world.size:
        return (
            f"the last batch of the epoch has {last} rows for {world.size} ranks, so some rank's "
            "shard is empty"
        )
    return None
