"""A config's accuracy in gpunet and in Keras 3, side by side over several seeds: the same
arrays (gpunet's own data loading and split), the same model and optimizer built in each.
It tells a gap to a published reference that both share from one that is gpunet's.

    pip install keras jax && python bench/keras_parity.py configs/fashion_mnist.yaml --seeds 3

Covers the layer types and options the reference configs use (Dense, Dropout, Activation,
Flatten; an optimizer name with its arguments); a config with more is refused.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import gpunet as gn
from gpunet import config as config_module
from gpunet import trainer

KERAS_LAYERS = ("Dense", "Dropout", "Activation", "Flatten")


def _keras_model(cfg, input_shape):
    import keras

    layers = [keras.Input(input_shape)]
    for spec in cfg.model:
        args = dict(spec)
        kind = args.pop("type")
        if kind not in KERAS_LAYERS:
            raise SystemExit(f"keras_parity: layer type {kind!r} not covered ({KERAS_LAYERS})")
        layers.append(getattr(keras.layers, kind)(**args))
    model = keras.Sequential(layers)
    optimizer = cfg.compile.optimizer
    if isinstance(optimizer, dict):
        args = dict(optimizer)
        name = args.pop("name")
        optimizer = keras.optimizers.get({"class_name": name, "config": args})
    model.compile(loss=cfg.compile.loss, optimizer=optimizer, metrics=cfg.compile.metrics)
    return model


def _final(history: dict, data, evaluate) -> dict:
    result = {}
    if "val_accuracy" in history:
        result["val"] = history["val_accuracy"][-1]
    if data.x_test is not None:
        result["test"] = evaluate(data.x_test, data.y_test)
    return result


def run(system: str, cfg, data, seed: int) -> dict:
    """Final validation and test accuracy of one training run."""
    fit = dict(epochs=cfg.fit.epochs, batch_size=cfg.fit.batch_size, verbose=0)
    if data.validation is not None:
        fit["validation_data"] = data.validation
    if system == "gpunet":
        gn.utils.set_random_seed(seed)
        model = trainer.build_model(cfg, data.x_train.shape[1:])
        history = model.fit(data.x_train, data.y_train, **fit).history
        return _final(history, data, lambda x, y: model.evaluate(x, y, batch_size=1000)[1])
    import keras

    keras.utils.set_random_seed(seed)
    model = _keras_model(cfg, data.x_train.shape[1:])
    history = model.fit(data.x_train, data.y_train, **fit).history
    return _final(history, data, lambda x, y: model.evaluate(x, y, batch_size=1000, verbose=0)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    cfg = config_module.load(args.config)
    if args.epochs:
        cfg.fit.epochs = args.epochs
    gn.backend.set_backend("numpy")
    data = trainer.load_data(cfg)
    print(f"{args.config}: {cfg.fit.epochs} epochs, seeds 0..{args.seeds - 1}\n")
    print("| system | seed | val acc. | test acc. | seconds |")
    print("|---|---|---|---|---|")
    finals = {"gpunet": [], "keras": []}
    for seed in range(args.seeds):
        for system in finals:  # alternating
            start = time.perf_counter()
            result = run(system, cfg, data, seed)
            finals[system].append(result)
            cells = [f"{100 * result[k]:.2f}%" if k in result else "-" for k in ("val", "test")]
            print(
                f"| {system} | {seed} | {' | '.join(cells)} | {time.perf_counter() - start:.0f} |",
                flush=True,
            )
    for system, results in finals.items():
        for key in ("val", "test"):
            values = [r[key] for r in results if key in r]
            if values:
                print(
                    f"{system} {key}: mean {100 * statistics.mean(values):.2f}%, "
                    f"range {100 * min(values):.2f}-{100 * max(values):.2f}%"
                )


if __name__ == "__main__":
    main()
