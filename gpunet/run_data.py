"""A config's data: the image sets or the user's files, the validation part, labels one-hot for
categorical cross-entropy, standardisation from the training part; and new inputs for predict
through the same pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np

import gpunet as gn
from gpunet import config as config_module
from gpunet.config import Config
from gpunet.datasets import fashion_mnist, images_to_float32, mnist, user
from gpunet.datasets.idx import DataError

IMAGE_SETS = {"mnist": mnist, "fashion_mnist": fashion_mnist}


@dataclasses.dataclass
class Data:
    x_train: np.ndarray
    y_train: np.ndarray
    validation: tuple | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    mean: np.ndarray | None = None  # standardisation statistics, kept for predict
    std: np.ndarray | None = None


def _one_hot(cfg: Config) -> bool:
    """Labels become one-hot only for categorical_crossentropy (and only if data.one_hot)."""
    return cfg.data.one_hot and gn.losses.get(cfg.compile.loss).name == "categorical_crossentropy"


def _labels(cfg: Config, y, num_classes: int | None):
    if y is None or not _one_hot(cfg) or num_classes is None:
        return y
    return gn.utils.to_categorical(y, num_classes)


def prepare_images(cfg: Config, images: np.ndarray) -> np.ndarray:
    """The books' pipeline for image sets: float32, scaled by 1/255 and flattened as configured."""
    if cfg.data.scale:
        return images_to_float32(images, flatten=cfg.data.flatten)
    shaped = images.reshape(len(images), -1) if cfg.data.flatten else images
    return shaped.astype(np.float32)


def _num_classes(cfg: Config) -> int | None:
    for spec in reversed(cfg.model):
        if spec.get("type") == "Dense":
            return spec.get("units")
    return None


def _user_file(cfg: Config, path: str, labels_path: str | None):
    return user.load(
        path,
        label_column=cfg.data.label_column,
        labels_path=labels_path,
        x_key=cfg.data.x_key,
        y_key=cfg.data.y_key,
        num_classes=_num_classes(cfg),
        encoding=cfg.data.encoding,
    )


def _check_same_features(path: str, x, train_path: str, x_train) -> None:
    if x.shape[1:] != x_train.shape[1:]:
        raise DataError(
            f"{path}: samples have shape {x.shape[1:]}, the training data's ({train_path}) "
            f"have {x_train.shape[1:]}; they must match."
        )


def load_data(cfg: Config) -> Data:
    """Training, validation and test arrays as the config describes them."""
    data, classes = cfg.data, _num_classes(cfg)
    if data.name is not None:
        (x, y), (x_test, y_test) = IMAGE_SETS[data.name].load_data(data.path)
        x, x_test = prepare_images(cfg, x), prepare_images(cfg, x_test)
    else:
        x, y = _user_file(cfg, data.path, data.labels_path)
        x_test = y_test = None
        if data.test_path:
            x_test, y_test = _user_file(cfg, data.test_path, data.test_labels_path)
    validation = None
    if data.validation_path:
        validation = _user_file(cfg, data.validation_path, data.validation_labels_path)
        _check_same_features(data.validation_path, validation[0], data.path, x)
    if x_test is not None and data.test_path:
        _check_same_features(data.test_path, x_test, data.path, x)
    if validation is None and (data.validation_split or data.validation_samples):
        # Keras's validation_split: the LAST part, taken before any shuffling.
        if data.validation_samples:
            if data.validation_samples >= len(x):
                raise config_module.ConfigError(
                    "config",
                    "data.validation_samples",
                    f"{data.validation_samples} leaves no training data out of {len(x)} samples.",
                )
            split_at = len(x) - data.validation_samples
        else:
            split_at = int(np.floor(len(x) * (1.0 - data.validation_split)))
        validation = (x[split_at:], y[split_at:])
        x, y = x[:split_at], y[:split_at]
    mean = std = None
    if data.standardize:
        others = [a for a in (validation[0] if validation else None, x_test) if a is not None]
        x, *others, mean, std = user.standardize(x, *others)
        if validation:
            validation = (others.pop(0), validation[1])
        if x_test is not None:
            x_test = others.pop(0)
    if validation is not None:
        validation = (validation[0], _labels(cfg, validation[1], classes))
    return Data(
        x, _labels(cfg, y, classes), validation, x_test, _labels(cfg, y_test, classes), mean, std
    )


def input_shape(cfg: Config) -> tuple:
    """The per-sample input shape a config's data gives, loading user data only if needed."""
    if cfg.data.name is not None:
        return (784,) if cfg.data.flatten else (28, 28)
    return load_data(cfg).x_train.shape[1:]


def prepare_inputs(cfg: Config, x: np.ndarray, arrays: dict) -> np.ndarray:
    """New inputs for predict, through the same pipeline as the run's training data."""
    if cfg.data.name is not None and x.dtype == np.uint8:
        return prepare_images(cfg, x)
    x = x.reshape(len(x), -1).astype(np.float32) if cfg.data.flatten else x.astype(np.float32)
    if "standardize/mean" in arrays:
        x = (x - arrays["standardize/mean"]) / arrays["standardize/std"]
    return x
