"""A fit run by the ranks of an MPI job, for tests/test_distributed_mpi.py:

    mpirun -n N python -m tests.mpi_fit FOLDER straight   # 2 epochs; a checkpoint at a fixed step
    mpirun -n N python -m tests.mpi_fit FOLDER resume     # continue that checkpoint to the end
    mpirun -n N python -m tests.mpi_fit FOLDER ledger     # the stand-in's ledger of each step

Rank 0 writes FOLDER/<mode>-<N>.npz: the final weights and the history (or the ledger's per-step
counts). The backend is the session's (GPUNET_BACKEND, GPUNET_CUPY_MODULE), except `ledger`,
which runs on the stand-in.
"""

import json
import os
import sys

import numpy as np

import gpunet as gn
from gpunet import distributed

CHECKPOINT_AT = (0, 20)  # (epoch, step) of the straight run's mid-epoch checkpoint


class _SaveAt(gn.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == CHECKPOINT_AT:
            self.model.save_checkpoint(self.path)  # every rank; rank 0 writes


def _data():
    rs = np.random.default_rng(0)
    x = rs.random((600, 12), dtype=np.float32)
    y = ((x - 0.5) @ rs.standard_normal((12, 4))).argmax(axis=1)
    return x, y


def _model(regularizer="l2"):
    gn.utils.set_random_seed(7)
    model = gn.Sequential(
        [
            gn.layers.Input((12,)),
            gn.layers.Dense(16, activation="relu", kernel_regularizer=regularizer),
            gn.layers.Dropout(0.25),
            gn.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main(folder: str, mode: str) -> None:
    world = distributed.world()
    if mode == "ledger":
        from gpunet import backend
        from tests import ledger, standin

        backend._use_device(standin)
    x, y = _data()
    # The ledger's model has no regularizer: the reference step's penalty allocates (the fused
    # step's kernels do not), which is not what the ledger test looks at.
    model = _model(None if mode == "ledger" else "l2")
    checkpoint = os.path.join(folder, "checkpoint.npz")
    fit = dict(batch_size=16, epochs=2, verbose=0, validation_split=0.25)
    out = {}
    if mode == "straight":
        model.fit(x, y, callbacks=[_SaveAt(checkpoint)], **fit)
    elif mode == "resume":
        model.resume_from(checkpoint)
        model.fit(x, y, **fit)
    else:
        _, records = ledger.record_fit(model, x, y, **fit)
        steps = [
            {
                k: r[k]
                for k in (
                    "epoch",
                    "collectives",
                    "syncs",
                    "allocs",
                    "synced",
                    "launches",
                    "graph_launches",
                )
            }  # fmt: skip
            | {"alloc_sites": sorted(r["sites"]["allocs"])}
            for r in records
        ]
        out["ledger"] = np.frombuffer(json.dumps(steps).encode(), np.uint8)
    if world.writes:
        history = {k: v for k, v in model.history.history.items()}
        out["history"] = np.frombuffer(json.dumps(history).encode(), np.uint8)
        out["weights"] = gn.backend.to_host(model._params)
        np.savez(os.path.join(folder, f"{mode}-{world.size}.npz"), **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
