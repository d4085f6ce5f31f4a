"""How each Dense layer runs in the fused step and its GEMM plans (gpunet/step/plans.py), with
cuBLASLt refusing epilogues: the fallbacks a GPU without those algorithms takes."""

import gpunet as gn
from gpunet.cuda.gemm import Unsupported
from gpunet.step import plans
from gpunet.step.plans import KERNEL, LINEAR_EPILOGUE, LOGITS, RELU_EPILOGUE


class _RecordingGemm:
    """Gemm's planning calls, recorded; `refuse(role, args)` says which have no algorithm."""

    def __init__(self, refuse=lambda role, args: False):
        self.refuse, self.calls = refuse, []

    def _plan(self, role, *args):
        self.calls.append((role, *args))
        if self.refuse(role, args):
            raise Unsupported(f"no algorithm for {role}{args}")
        return (role, *args)

    def forward(self, *args):
        return self._plan("fwd", *args)

    def inputs(self, *args):
        return self._plan("inputs", *args)

    def weights(self, *args):
        return self._plan("weights", *args)


def _runs():
    model = gn.Sequential(
        [
            gn.layers.Input((8,)),
            gn.layers.Dense(16, activation="relu"),
            gn.layers.Dense(12, activation="relu"),
            gn.layers.Dense(4, activation="softmax"),
        ]
    )
    return plans.layer_runs(model, epilogues=True)


def test_relu_layers_fuse_their_backward_and_bias_gradient_into_the_next_product():
    runs, gemm = _runs(), _RecordingGemm()
    assert [run.mode for run in runs] == [RELU_EPILOGUE, RELU_EPILOGUE, LOGITS]
    made = plans.gemm_plans(gemm, runs, features=8, rows=32)
    assert gemm.calls == [
        ("fwd", 32, 8, 16, True, True),
        ("fwd", 32, 16, 12, True, True),
        ("fwd", 32, 12, 4, True, False),
        ("inputs", 32, 16, 12, True, True),  # DRELU_BGRAD: layer 0's bias gradient
        ("inputs", 32, 12, 4, True, True),
        ("weights", 32, 8, 16, False),  # its bias gradient comes from the next product
        ("weights", 32, 16, 12, False),
        ("weights", 32, 12, 4, True),
    ]
    assert [run.bias_grad_by_next for run in runs] == [True, True, False]
    assert made[2, "weights"] == (("weights", 32, 12, 4, True), True)
    assert set(made) == {(i, role) for i in range(3) for role in ("fwd", "weights")} | {
        (1, "inputs"),
        (2, "inputs"),
    }


def test_without_epilogue_algorithms_every_layer_falls_back_to_kernels():
    logits_tries = []

    def refuse(role, args):
        if role == "fwd" and args[2] == 4:  # the logits layer: refused once, then planned
            logits_tries.append(args)
            return len(logits_tries) == 1
        return args[-2] if role == "inputs" else args[-1]  # any ReLU epilogue, any BGRADA

    gemm = _RecordingGemm(refuse)
    runs = _runs()
    made = plans.gemm_plans(gemm, runs, features=8, rows=32)
    # The ReLU layers move to the kernel path; the last layer stays the loss's logits.
    assert [run.mode for run in runs] == [KERNEL, KERNEL, LOGITS]
    assert [run.bias_grad_by_next for run in runs] == [False, False, False]
    assert made[0, "fwd"] == ("fwd", 32, 8, 16, True, False)
    assert made[2, "fwd"] == ("fwd", 32, 12, 4, True, False)
    assert made[1, "inputs"] == ("inputs", 32, 16, 12, False, False)
    assert made[2, "inputs"] == ("inputs", 32, 12, 4, False, False)
    # No BGRADA either: the bias gradients are left to the kernels.
    assert [made[i, "weights"] for i in range(3)] == [
        (("weights", 32, 8, 16, False), False),
        (("weights", 32, 16, 12, False), False),
        (("weights", 32, 12, 4, False), False),
    ]


def test_without_drelu_bgrad_the_relu_layers_move_to_kernels_and_replan_plain():
    # cuBLASLt fuses ReLU into the forward products but has no DRELU_BGRAD for the backward.
    gemm = _RecordingGemm(lambda role, args: role == "inputs" and args[-2])
    runs = _runs()
    first = plans.gemm_plans(gemm, runs, features=8, rows=32)
    assert first[0, "fwd"] == ("fwd", 32, 8, 16, True, True)  # planned before the refusal
    assert [run.mode for run in runs] == [KERNEL, KERNEL, LOGITS]
    assert [run.bias_grad_by_next for run in runs] == [False, False, False]
    assert first[1, "inputs"] == ("inputs", 32, 16, 12, False, False)
    assert first[2, "inputs"] == ("inputs", 32, 12, 4, False, False)
    assert [first[i, "weights"][0][-1] for i in range(3)] == [True, True, True]  # BGRADA
    # The fused step plans again while modes change (_prepare_every_shape): the second pass
    # plans the forwards of the layers now on the kernel path without the ReLU epilogue.
    second = plans.gemm_plans(gemm, runs, features=8, rows=32)
    assert [run.mode for run in runs] == [KERNEL, KERNEL, LOGITS]
    assert second[0, "fwd"] == ("fwd", 32, 8, 16, True, False)
    assert second[1, "fwd"] == ("fwd", 32, 16, 12, True, False)


def test_linear_layers_fuse_into_their_gemm_and_each_dropout_has_its_own_stream():
    model = gn.Sequential(
        [
            gn.layers.Input((8,)),
            gn.layers.Dense(16, activation="relu"),
            gn.layers.Dropout(0.2),
            gn.layers.Dense(12),
            gn.layers.Dropout(0.0),  # no dropout: nothing to draw
            gn.layers.Dense(10),
            gn.layers.Dropout(0.3),
            gn.layers.Dense(4, activation="softmax"),
        ]
    )
    runs = plans.layer_runs(model, epilogues=True)
    assert [run.mode for run in runs] == [KERNEL, LINEAR_EPILOGUE, KERNEL, LOGITS]
    assert [run.stream for run in runs] == [0, -1, 1, -1]
    assert [run.dropout.rate if run.dropout else None for run in runs] == [0.2, None, 0.3, None]
    without = plans.layer_runs(model, epilogues=False)
    assert [run.mode for run in without] == [KERNEL, KERNEL, KERNEL, LOGITS]
