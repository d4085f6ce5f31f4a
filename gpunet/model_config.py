"""A Sequential model's config, as Keras 3 writes it: its name and each layer serialized
(`{"module": "keras.layers", "class_name", "config", "registered_name"}`), an InputLayer first
when the input shape is known; `from_config` builds an equal model with fresh weights."""

from __future__ import annotations

from gpunet import layers as layers_module
from gpunet.messages import excerpt


def serialize_layer(layer) -> dict:
    return {
        "module": "keras.layers",
        "class_name": type(layer).__name__,
        "config": layer.get_config(),
        "registered_name": None,
    }


def deserialize_layer(entry):
    """A layer from its serialized form (an InputLayer too)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise ValueError(
            f"A serialized layer is a dict with 'class_name' and 'config', received "
            f"{excerpt(entry)}."
        )
    name = entry["class_name"]
    cls = layers_module.InputLayer if name == "InputLayer" else layers_module.get(name)
    config = entry.get("config")
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ValueError(f"layer {name}: config must be a dict, received {excerpt(config)}.")
    try:
        return cls.from_config(config)
    except TypeError as exc:
        raise ValueError(f"layer {name}: bad config ({exc}).") from None


class ConfigMethods:
    """Mixed into Sequential: `get_config()` and `Sequential.from_config(config)`."""

    def get_config(self) -> dict:
        entries = []
        if self._input_shape is not None:
            first = layers_module.InputLayer(self._input_shape, name="input_layer")
            entries.append(serialize_layer(first))
        entries += [serialize_layer(layer) for layer in self.layers]
        return {"name": self.name, "trainable": True, "dtype": "float32", "layers": entries}

    def save(self, filepath: str, overwrite: bool = True) -> None:
        """Write the whole model (config, compile config, weights) to `filepath` (`*.keras`,
        Keras 3's format, which `gn.models.load_model` and Keras's `load_model` read)."""
        import os

        from gpunet.saving import keras_file

        if not overwrite and os.path.exists(filepath):
            raise FileExistsError(f"save: {filepath} exists and overwrite=False.")
        keras_file.save(self, filepath)

    def export(self, filepath: str, format: str = "onnx") -> None:  # noqa: A002 (Keras's name)
        """Write the inference graph to `filepath` in `format`: "onnx" (opset 21, a dynamic
        batch axis; needs `pip install 'gpunet[onnx]'`). Keras's other formats (SavedModel,
        OpenVINO, LiteRT) belong to TensorFlow and Intel runtimes gpunet does not carry."""
        if format != "onnx":
            raise ValueError(
                f"export: format {format!r} is not available in gpunet; use format='onnx'."
            )
        from gpunet.saving import onnx_export

        onnx_export.export(self, filepath)

    @classmethod
    def from_config(cls, config: dict):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError(
                f"A Sequential config is a dict with a 'layers' list, received {excerpt(config)}."
            )
        return cls(
            [deserialize_layer(entry) for entry in config["layers"]], name=config.get("name")
        )
