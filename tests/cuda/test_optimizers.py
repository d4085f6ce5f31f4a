"""gpunet/cuda/optimizers.cu through gpunet/step/updates.py: every update the xp rule's."""

import numpy as np
import pytest

from gpunet import optimizers
from tests.cuda.helpers import put as _put

OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.05),
    "sgd-momentum-clipvalue": lambda: optimizers.SGD(0.05, momentum=0.9, clipvalue=0.5),
    "sgd-nesterov-decay": lambda: optimizers.SGD(
        0.05, momentum=0.9, nesterov=True, weight_decay=0.01
    ),  # fmt: skip
    "sgd-clipnorm": lambda: optimizers.SGD(0.05, clipnorm=1.0),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop-centered-momentum": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad-clipvalue": lambda: optimizers.Adagrad(0.05, clipvalue=0.3),
    "adam": lambda: optimizers.Adam(0.01),
    "adam-amsgrad-global-clipnorm": lambda: optimizers.Adam(
        0.01, amsgrad=True, epsilon=1e-4, global_clipnorm=2.0
    ),  # fmt: skip
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.1),
    "adamax": lambda: optimizers.Adamax(0.01),
    "nadam-decay": lambda: optimizers.Nadam(0.01, weight_decay=0.05),
}


def _fused_update(device, optimizer, params, grads):
    """The fused step's update (gpunet/step/updates.py) alone, on these arrays."""

    from gpunet.step import updates

    update = updates.Updates(device, optimizer, params, grads)
    update.sync_rates()
    update.enqueue()
    for product, factor in update.products():  # what step_end does after the update
        product *= factor
    return update.scaled_loss


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_fused_update_is_the_xp_rule(device, name):
    """Bit for bit, but for the norm clipping, whose norm the kernel sums in float64 (the xp
    rule: a float32 dot)."""
    rs = np.random.default_rng(11)
    segments = [(0, 600), (600, 1000)]
    w = rs.standard_normal(1000).astype(np.float32)
    reference = OPTIMIZERS[name]()
    w_ref = w.copy()
    reference.build(w_ref, segments)
    optimizer = OPTIMIZERS[name]()
    w_dev = _put(device, w)
    optimizer.build(w_dev, segments)
    for step in range(4):
        g = (rs.standard_normal(1000) * 10.0 ** (step - 2)).astype(np.float32)
        g[3] = 0.0
        scale = reference.loss_scale()
        g_step = (g * np.float32(scale)).astype(np.float32) if scale != 1.0 else g
        reference.apply(w_ref, g_step.copy(), scale)
        scaled = _fused_update(device, optimizer, w_dev, _put(device, g_step))
        assert scaled == (scale != 1.0)
        if "clipnorm" in name:
            np.testing.assert_allclose(w_dev.get(), w_ref, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(w_dev.get(), w_ref, err_msg=f"step {step}")
    clipped = "clipnorm" in name  # else exact
    for slot, value in reference.slots.items():
        atol = 1e-6 * np.abs(value).max() if clipped else 0.0
        np.testing.assert_allclose(optimizer.slots[slot].get(), value, rtol=0.0, atol=atol)
    for product, value in reference.products.items():
        assert optimizer.products[product].get()[0] == value[0], product
