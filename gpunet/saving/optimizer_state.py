"""The optimizer's state in Keras 3's `optimizer/vars` group: the iteration count, the learning
rate (unless a schedule gives it), then each slot of each trainable variable, and Nadam's
running product. Keras lays the slots out in groups: within a group each variable's slots
follow each other (Adam: a kernel's momentum, its velocity, the bias's momentum, ...); the
groups follow each other (amsgrad's velocity_hat after all of them). Frozen layers have no
slots there, as Keras builds its optimizer over the trainable variables only.

gpunet's running products (Adam's beta powers, ...) are Keras's powers of the iteration count;
gpunet writes them, and the learning rate, as exact float64 values beside Keras's float32
variables (an attribute Keras ignores), so a model saved and loaded by gpunet trains on as an
unbroken run, bit for bit.
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from gpunet import backend, optimizers
from gpunet.schedules import LearningRateSchedule

EXACT = "gpunet_exact"  # the float64 values Keras's float32 variables round


def slot_groups(optimizer) -> list[tuple[str, ...]] | None:
    """Keras's slot groups for this optimizer and its options; None for one Keras lacks."""
    o = optimizer
    if isinstance(o, optimizers.Nadam):
        return [("momentum", "velocity")]
    if isinstance(o, optimizers.Adam):  # AdamW too
        return [("momentum", "velocity")] + ([("velocity_hat",)] if o.amsgrad else [])
    if isinstance(o, optimizers.Adamax):
        return [("momentum", "norm")]
    if isinstance(o, optimizers.Adagrad):
        return [("accumulator",)]
    if isinstance(o, optimizers.RMSprop):
        return (
            [("velocity",)]
            + ([("momentum",)] if o.momentum else [])
            + ([("average_gradient",)] if o.centered else [])
        )
    if type(o) is optimizers.SGD:  # a subclass may keep other slots
        return [("momentum",)] if o.momentum else []
    return None


# The default names Keras 3 and gpunet give each optimizer (the group's "name" attribute), by
# the family whose slots they keep: a state saved by one family never loads into another,
# even where the shapes agree (RMSprop's velocities and SGD's momenta).
FAMILIES = {
    "sgd": "sgd",
    "adam": "adam",
    "adamw": "adam",
    "adam_w": "adam",
    "rmsprop": "rmsprop",
    "rm_sprop": "rmsprop",
    "adagrad": "adagrad",
    "adamax": "adamax",
    "nadam": "nadam",
}


def _family(optimizer) -> str | None:
    for cls, family in (
        (optimizers.Nadam, "nadam"),
        (optimizers.Adam, "adam"),
        (optimizers.Adamax, "adamax"),
        (optimizers.Adagrad, "adagrad"),
        (optimizers.RMSprop, "rmsprop"),
        (optimizers.SGD, "sgd"),
    ):
        if isinstance(optimizer, cls):
            return family
    return None


def _variables(model) -> list[tuple[int, int, tuple]]:
    """(start, stop, shape) in the flat vector of each trainable variable, in Keras's order."""
    return [
        (a, b, shape)
        for owner, (a, b), shape in zip(
            model._segment_owners, model._segments, model._segment_shapes
        )
        if owner.trainable
    ]


def _has_rate(optimizer) -> bool:
    return not isinstance(optimizer._learning_rate, LearningRateSchedule)


def arrays(model) -> list[np.ndarray] | None:
    """The `optimizer/vars` arrays of a compiled, built model, or None when there are none to
    write (not compiled, or an optimizer Keras does not have)."""
    optimizer = model.optimizer
    groups = slot_groups(optimizer) if optimizer is not None else None
    if groups is None or not getattr(optimizer, "built", False):
        return None
    out = [np.asarray(optimizer.iterations, dtype=np.int64)]
    if _has_rate(optimizer):
        out.append(np.asarray(optimizer._learning_rate, dtype=np.float32))
    slots = {name: backend.to_host(slot) for name, slot in optimizer.slots.items()}
    for group in groups:
        for start, stop, shape in _variables(model):
            out += [slots[name][start:stop].reshape(shape) for name in group]
    if isinstance(optimizer, optimizers.Nadam):
        out.append(np.asarray(backend.to_host(optimizer.products["u_product"])[0], np.float32))
    return out


def write(model, file) -> None:
    """The state into `file` (an open h5py File), when the model has one to write."""
    values = arrays(model)
    if values is None:
        return
    group = file.create_group("optimizer").create_group("vars")
    group.attrs["name"] = model.optimizer.name
    for i, value in enumerate(values):
        group.create_dataset(str(i), data=value)
    optimizer = model.optimizer
    exact = {
        "products": {k: float(backend.to_host(v)[0]) for k, v in optimizer.products.items()},
        "learning_rate": optimizer._learning_rate if _has_rate(optimizer) else None,
    }
    group.attrs[EXACT] = json.dumps(exact)


def _derived_products(optimizer, iterations: int, values: list) -> dict:
    """Keras keeps no running products: they are powers of the iteration count (Nadam's
    u_product is its last variable)."""
    t = iterations
    names = optimizer.products
    derived = {}
    if "beta_1_power" in names:
        derived["beta_1_power"] = optimizer.beta_1**t
    if "beta_2_power" in names:
        derived["beta_2_power"] = optimizer.beta_2**t
    if "decay_power" in names:
        derived["decay_power"] = 0.96**t
    if "u_product" in names:
        derived["u_product"] = float(values[-1])
    return derived


def read(model, file, where: str) -> None:
    """Restore the optimizer's state from `file` when the model is compiled and the file holds
    a state that fits its optimizer; one warning says why when it does not fit."""
    optimizer = model.optimizer
    group = file.get("optimizer/vars")
    if optimizer is None or group is None or not getattr(optimizer, "built", False):
        return
    expected = arrays(model)
    found = [group[str(i)][()] for i in range(len(group.keys())) if str(i) in group]
    why = None
    saved_family = FAMILIES.get(str(group.attrs.get("name", "")))
    if saved_family is not None and saved_family != _family(optimizer):
        why = f"it is {group.attrs['name']}'s, this model's optimizer is {optimizer.name}"
    elif expected is None:
        why = f"gpunet's {type(optimizer).__name__} has no Keras layout"
    elif len(found) != len(group.keys()) or len(found) != len(expected):
        why = (
            f"it holds {len(group.keys())} arrays, this {type(optimizer).__name__} {len(expected)}"
        )
    elif any(np.shape(a) != np.shape(b) for a, b in zip(found, expected)):
        why = "its arrays' shapes differ from this model's variables"
    if why is not None:
        warnings.warn(
            f"{where}: the optimizer state was not restored ({why}); training starts the "
            "optimizer afresh.",
            stacklevel=3,
        )
        return
    iterations = int(found[0])
    rest = found[1:]
    scalars = {"iterations": iterations}
    saved = group.attrs.get(EXACT)
    exact = json.loads(saved) if saved is not None else {}
    if _has_rate(optimizer):
        scalars["learning_rate"] = exact.get("learning_rate") or float(rest[0])
        rest = rest[1:]
    slots = {name: backend.to_host(slot).copy() for name, slot in optimizer.slots.items()}
    position = 0
    for group_names in slot_groups(optimizer):
        for start, stop, _ in _variables(model):
            for name in group_names:
                slots[name][start:stop] = np.asarray(rest[position]).reshape(-1)
                position += 1
    products = exact.get("products")
    if products is None or set(products) != set(optimizer.products):
        products = _derived_products(optimizer, iterations, found)
    scalars["products"] = products
    optimizer.set_state(scalars, slots)
