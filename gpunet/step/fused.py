"""`FusedTraining`: the CuPy training step as a dozen launches: one batch gather, one GEMM per
Dense product with bias, ReLU, ReLU-backward and bias-gradient fused into it (cuBLASLt), one
kernel for each other activation (dropout fused in) and its backward, one for the loss
(softmax or sigmoid cross-entropy, MSE) with its gradient and metric, two for L1/L2 penalties
where there are any, one for the optimizer's update over the flat parameters (updates.py), one
for the step's bookkeeping. What it takes: support.py; how each layer runs and its GEMM
plans: plans.py.

Everything a step reads that changes between steps lives in device memory and advances on the
device (the batch position, each dropout stream's offset, Adam's beta powers), so the same
launches, replayed, train the next batch: `graph.py` captures them. The host writes a device
scalar only when its value differs from what the device holds (`sync`): a resumed position, a
new learning rate. The xp reference step (reference.py) is the oracle this must match.

Data-parallel (gpunet.distributed): a step of a global batch of `rows` rows gathers, computes
and sums this rank's shard of them (`_shard`), scales the loss by the global rows, draws each
dropout unit by its global position, and sums the gradients over the ranks in one NCCL
all-reduce on the step's stream (captured with the rest), before the update.
"""

from __future__ import annotations

import numpy as np

from gpunet import backend, distributed
from gpunet.buffers import Buffers
from gpunet.cuda import gemm as gemm_module
from gpunet.cuda import kernels
from gpunet.kernels import dropout as dropout_kernels
from gpunet.optimizers.base import DeviceScalar
from gpunet.step import penalties, support, updates
from gpunet.step import plans as plans_module
from gpunet.step.plans import KERNEL, LINEAR_EPILOGUE, LOGITS, RELU_EPILOGUE, DenseRun
from gpunet.step.training import ArrayEpochs


class FusedTraining(ArrayEpochs):
    """The fused CuPy training step over an epoch's batches (the interface of
    `ReferenceTraining`).

    Args:
        model: a built, compiled Sequential that `unsupported` accepts.
        x, y, w: the training data on the device (w may be None).
        batch_size: the fit's batch size.
    """

    name = "fused"

    def __init__(self, model, x, y, w, batch_size: int):
        xp = self.xp = backend.get_array_module(x)
        self.model, self.optimizer = model, model.optimizer
        self.x = x.reshape(len(x), -1)
        self.y = y  # sparse labels arrive as int64 (Sequential._prepare)
        self.w, self.batch_size = w, batch_size
        self.features = self.x.shape[1]
        self.y_bytes = self.y.itemsize * int(np.prod(self.y.shape[1:], dtype=np.int64))
        self.loss_kernel = support.loss_kernel(model.loss, model.layers[-1].activation.name)
        self.world = distributed.world()
        self.world.prepare_device(xp)  # NCCL's communicator, before any capture
        self.penalties = penalties.Penalties(xp, model, gradient=self.world.rank == 0)
        self.updates = updates.Updates(xp, self.optimizer, model._params, model._grads)
        lt = gemm_module.load(xp)
        self.gemm = gemm_module.Gemm(xp, lt, model.precision) if lt is not None else None
        # bf16: the GEMMs read bfloat16 copies of their inputs, made each step (to_bf16).
        self.bf16 = self.gemm is not None and model.precision == "bf16"
        self.dense = plans_module.layer_runs(model, epilogues=self.gemm is not None)
        # The layers with a dropout stream, in stream order (run.stream indexes offsets).
        self.dropped = [run for run in self.dense if run.dropout is not None]
        self.buffers = Buffers()
        self.stream = xp.cuda.Stream(non_blocking=False)
        # Device counters, with the host's record of what they hold.
        self.position = xp.zeros(1, np.int32)
        self.offsets = xp.zeros(max(len(self.dropped), 1), np.uint64)
        self._position_held: int | None = None
        self._offsets_held: list = [None] * len(self.dropped)
        self._scales: dict = {}  # rows -> DeviceScalar of the loss scale / rows
        self._plans: dict = {}  # rows -> the GEMM plans (None without cuBLASLt)
        self.order = None
        self._identity = None
        self.tracker = None
        self._prepare_every_shape()

    # ----- setup --------------------------------------------------------------------------------

    def _prepare_every_shape(self) -> None:
        """Plan the fit's batch shapes (full, and the last partial one) before anything runs:
        a layer that one shape's planning moves to the kernel path moves for all, so every
        shape's plans, and every graph captured from them, agree on how each layer runs."""
        n, batch = len(self.x), self.batch_size
        shapes = sorted({min(batch, n), n % batch} - {0})
        while True:
            modes = [(run.mode, run.bias_grad_by_next) for run in self.dense]
            for rows in shapes:
                self.prepare(rows)
            if modes == [(run.mode, run.bias_grad_by_next) for run in self.dense]:
                return

    def _get(self, name: str, shape: tuple, dtype):
        return self.buffers.get(self.xp, name, shape, dtype)

    def _shard(self, rows: int) -> tuple[int, int]:
        """(first row, rows) of this rank's part of a global batch of `rows` rows."""
        first, stop = self.world.shard(0, rows)
        return first, stop - first

    def prepare(self, rows: int) -> None:
        """Everything a step of `rows` rows (this rank's shard of them) uses: buffers, GEMM
        plans, compiled kernels (made here, so that a capture allocates and compiles
        nothing)."""
        for name in kernels.KERNELS:
            kernels.function(self.xp, name)  # compiled now, not during a capture
        local = self._shard(rows)[1]
        self._batch_buffers(local)
        self._plans[rows] = (
            plans_module.gemm_plans(self.gemm, self.dense, self.features, local)
            if self.gemm is not None
            else None
        )
        for run in self.dense:
            self._layer_buffers(run, local)
        self._loss_buffers(local)
        self._increments(rows)
        if self.bf16:
            self._get("params16", self.model._params.shape, np.uint16)
            inputs = self.features
            for i, run in enumerate(self.dense):
                self._get(f"{i}/h16", (local, inputs), np.uint16)
                self._get(f"{i}/gz16", (local, run.units), np.uint16)
                inputs = run.units

    def _batch_buffers(self, rows: int):
        return (
            self._get("xb", (rows, self.features), np.float32),
            self._get("yb", (rows,) + self.y.shape[1:], self.y.dtype),
            None if self.w is None else self._get("wb", (rows,), np.float32),
        )

    def _layer_buffers(self, run: DenseRun, rows: int) -> dict:
        units, key = run.units, run.layer.name
        found = {
            "out": self._get(f"{key}/out", (rows, units), np.float32),
            "gz": self._get(f"{key}/gz", (rows, units), np.float32),
        }
        if run.mode == KERNEL:
            found["z"] = self._get(f"{key}/z", (rows, units), np.float32)
        if run.mode == RELU_EPILOGUE:
            found["aux"] = self._get(f"{key}/aux", gemm_module.aux_shape(units, rows), np.uint8)
        if run.dropout is not None:
            found["mask"] = self._get(f"{key}/mask", (rows, units), np.float32)
        return found

    def _loss_buffers(self, rows: int):
        classes = self.dense[-1].units
        return (
            self._get("probs", (rows, classes), np.float32),
            self._get("row_loss", (rows,), np.float64),
            self._get("row_metric", (rows,), np.float32),
        )

    def _increments(self, rows: int):
        """Each dropout stream's units per step of `rows` rows (device, uint64)."""
        units = [rows * run.units for run in self.dropped] or [0]

        def make(xp, shape, dtype):
            out = xp.empty(shape, dtype)
            for k, value in enumerate(units):  # device writes: no host-to-device copy
                out[k : k + 1].fill(np.uint64(value))
            return out

        return self.buffers.constant(self.xp, f"increments/{rows}", (len(units),), np.uint64, make)

    # ----- per execution ------------------------------------------------------------------------

    def begin_epoch(self, order, first: int = 0) -> None:
        """The epoch's permutation (host), or None: the identity (the data in order)."""
        xp, n = self.xp, len(self.x)
        if order is None:
            if self._identity is None:
                self._identity = xp.arange(n, dtype=np.int64)
            self.order = self._identity
            return
        target = self._get("order", order.shape, np.int64)
        backend.copy_to_device(target, order.astype(np.int64, copy=False))
        self.order = target

    def sync(self, position: int, rows: int) -> None:
        """Write the device scalars whose host value changed (outside any capture)."""
        if self._position_held != position:
            self.position.fill(position)
            self._position_held = position
        for k, run in enumerate(self.dropped):
            if self._offsets_held[k] != run.dropout.offset:
                self.offsets[k : k + 1].fill(np.uint64(run.dropout.offset))
                self._offsets_held[k] = run.dropout.offset
        scale = self.updates.loss_scale()
        held = self._scales.get(rows)
        value = float(np.float32(scale / rows))
        if held is None:
            self._scales[rows] = DeviceScalar(self.xp, value, np.float32)
        else:
            held.set(value)
        self.updates.sync_rates()
        self.penalties.sync(scale)

    def account(self, rows: int) -> None:
        """The host's side of a step the device ran: counters it mirrors."""
        if self.updates.rule is not None:  # an xp rule counts its own iterations
            self.optimizer.iterations += 1
        for k, run in enumerate(self.dropped):
            run.dropout.offset += rows * run.units
            self._offsets_held[k] = run.dropout.offset
        self._position_held += 1
        self.tracker.add_rows(rows)

    def run(self, tracker, first: int, count: int) -> int:
        """Steps first .. first + count - 1 of the epoch, eagerly; returns count."""
        self.tracker = tracker
        with self.stream:
            for step in range(first, first + count):
                rows = self._rows(step)
                self.sync(step, rows)
                self.enqueue(rows)
                self.account(rows)
        return count

    def _rows(self, step: int) -> int:
        return min(self.batch_size, len(self.x) - step * self.batch_size)

    # ----- the launches of one step ---------------------------------------------------------------

    def enqueue(self, rows: int) -> None:
        """Issue the launches of one training step of a global batch of `rows` rows on the
        current stream (run, or captured)."""
        xp, launch = self.xp, kernels.launch
        first, local = self._shard(rows)
        xb, yb, wb = self._batch_buffers(local)
        launch(
            xp, "gather_batch", local * max(self.features, self.y_bytes), self.x, self.y, self.w,
            self.order, self.position, self.batch_size, first, local, self.features,
            self.y_bytes, xb, yb, wb,
        )  # fmt: skip
        plans = self._plans[rows]
        if self.bf16:  # the weights as this step's GEMMs read them
            params = self.model._params
            launch(xp, "to_bf16", params.size, params, self._get("params16", params.shape,
                   np.uint16), params.size)  # fmt: skip
        h, saved = xb, []
        for i, run in enumerate(self.dense):
            h = self._forward(i, run, h, local, plans, first)
            saved.append(h)
        logits = h
        gz = self._layer_buffers(self.dense[-1], local)["gz"]
        probs, row_loss, row_metric = self._loss_buffers(local)
        units = self.dense[-1].units
        scale = self._scales[rows].array  # the loss scale over the global batch's rows
        if self.loss_kernel == "mse":
            launch(xp, "mse", local, logits, yb, wb, scale, gz, row_loss, row_metric, local,
                   units)  # fmt: skip
        elif self.loss_kernel == "sigmoid_xent":
            launch(xp, "sigmoid_xent", local, logits, yb, wb, scale, probs, gz, row_loss,
                   row_metric, local, units, int(self.model.loss.from_logits))  # fmt: skip
        else:
            launch(xp, self.loss_kernel, local, logits, yb, wb, scale, probs, gz, row_loss,
                   row_metric, local, units)  # fmt: skip
        for i in reversed(range(len(self.dense))):
            self._backward(i, xb if i == 0 else saved[i - 1], local, plans)
        self.penalties.enqueue(self.model._params, self.model._grads)
        if self.world.size > 1:
            self.world.all_sum(self.model._grads, what="a step's gradient all-reduce")
        self.updates.enqueue()
        self._step_end(row_loss, row_metric, wb, local, rows)

    def _rounded(self, name: str, array):
        """precision="bf16": `array` rounded into its kept bfloat16 copy (one launch); else
        `array` itself."""
        if not self.bf16:
            return array
        copy = self._get(name, array.shape, np.uint16)
        kernels.launch(self.xp, "to_bf16", array.size, array, copy, array.size)
        return copy

    def _kernel_operand(self, layer):
        """The layer's kernel as the GEMMs read it: its view of the step's bfloat16 copy of
        the parameters (bf16), or the float32 master itself."""
        if not self.bf16:
            return layer.kernel
        params = self.model._params
        start = (layer.kernel.data.ptr - params.data.ptr) // params.itemsize
        flat = self._get("params16", params.shape, np.uint16)
        return flat[start : start + layer.kernel.size].reshape(layer.kernel.shape)

    def _forward(self, i: int, run: DenseRun, h, rows: int, plans, first: int = 0):
        layer, xp = run.layer, self.xp
        if plans is not None:
            h, kernel = self._rounded(f"{i}/h16", h), self._kernel_operand(layer)
        buffers = self._layer_buffers(run, rows)
        bias = layer.bias if layer.use_bias else None
        out = buffers["out"]
        if run.mode in (RELU_EPILOGUE, LINEAR_EPILOGUE) or (
            run.mode == LOGITS and plans is not None
        ):
            plans[i, "fwd"](h, kernel, out, bias, buffers.get("aux"))
            return out
        target = buffers["z"] if run.mode == KERNEL else out
        if plans is not None:
            plans[i, "fwd"](h, kernel, target, bias, None)
            bias = None  # added by the epilogue
        else:
            xp.matmul(h, layer.kernel, out=target)
        if run.mode == LOGITS:  # without cuBLASLt: the bias, in place
            kernels.launch(
                xp, "bias_act_fwd", target.size, target, bias, None, target, None, rows,
                run.units, 0, 0, None, 0, 1.0, 0,
            )  # fmt: skip
            return target
        dropout = run.dropout
        seed = threshold = 0
        scale = 1.0
        if dropout is not None:
            seed = dropout.stream_seed
            threshold = dropout_kernels.threshold(dropout.rate)
            scale = float(np.float32(1.0 / (1.0 - dropout.rate)))
        # z = target + bias kept in place (when the GEMM did not add the bias) for act_bwd.
        kernels.launch(
            xp, "bias_act_fwd", target.size, target, bias, target if bias is not None else None,
            out, buffers.get("mask"), rows,
            run.units, run.code, np.uint64(seed), self._offset(run), np.uint32(threshold), scale,
            first,
        )  # fmt: skip
        return out

    def _offset(self, run: DenseRun):
        return self.offsets[run.stream : run.stream + 1] if run.stream >= 0 else None

    def _backward(self, i: int, h, rows: int, plans) -> None:
        """Layer i's weight and bias gradients from its gz, and the gz of layer i - 1."""
        xp, run = self.xp, self.dense[i]
        layer = run.layer
        gz = self._layer_buffers(run, rows)["gz"]
        g_bias = layer.g_bias if layer.use_bias and not run.bias_grad_by_next else None
        gz_operand = gz
        if plans is not None:
            plan, fused_bias = plans[i, "weights"]
            if self.bf16:  # the input as the forward rounded it, and the gradient rounded
                h = self._get(f"{i}/h16", h.shape, np.uint16)
                gz_operand = self._rounded(f"{i}/gz16", gz)
            plan(h, gz_operand, layer.g_kernel, g_bias if fused_bias else None)
            if g_bias is not None and not fused_bias:
                kernels.launch(xp, "bias_grad", run.units, gz, g_bias, rows, run.units)
        else:
            xp.matmul(h.T, gz, out=layer.g_kernel)
            if g_bias is not None:
                kernels.launch(xp, "bias_grad", run.units, gz, g_bias, rows, run.units)
        if i == 0:
            return
        previous = self.dense[i - 1]
        before = self._layer_buffers(previous, rows)
        target = before["gz"]
        if plans is not None:
            g_bias_previous = previous.layer.g_bias if previous.bias_grad_by_next else None
            kernel = self._kernel_operand(layer)
            plans[i, "inputs"](gz_operand, kernel, target, before.get("aux"), g_bias_previous)
        else:
            xp.matmul(gz, layer.kernel.T, out=target)
        if previous.mode == KERNEL:
            kernels.launch(
                xp, "act_bwd", target.size, target, before["z"], before["out"],
                before.get("mask"), target, target.size, previous.code,
            )  # fmt: skip

    def _step_end(self, row_loss, row_metric, wb, local: int, rows: int) -> None:
        """The step's sums over this rank's `local` rows; counters advanced by the global
        batch's `rows` rows."""
        tracker = self.tracker
        accuracy = tracker.metric_state(0) if tracker.metrics else None
        (product_1, factor_1), (product_2, factor_2) = (
            self.updates.products() + [(None, 1.0)] * 2
        )[:2]
        kernels.launch(
            self.xp, "step_end", 1, row_loss, row_metric, wb, local, self.penalties.partials,
            self.penalties.parts, tracker.step_totals, accuracy,
            self.position, self.offsets, self._increments(rows), len(self.dropped), product_1,
            factor_1, product_2, factor_2,
        )  # fmt: skip
