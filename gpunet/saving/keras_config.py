"""Keras 3's configs as gpunet reads them. Keras writes options gpunet has no use for
(constraints, quantization, renorm, EMA, ...): each is accepted at the value that turns it off
and dropped; any other value is refused, naming the option, since ignoring it would change the
model. Dtypes must be float32, the dtype gpunet trains in."""

from __future__ import annotations

from gpunet.messages import excerpt

# class name -> {option: the value meaning "off"}
LAYER_OFF = {
    "InputLayer": {"sparse": False, "ragged": False, "optional": False},
    "Dense": {
        "kernel_constraint": None,
        "bias_constraint": None,
        "quantization_config": None,
        "lora_rank": None,
        "lora_alpha": None,
    },
    "Dropout": {"noise_shape": None},
    "BatchNormalization": {
        "beta_regularizer": None,
        "gamma_regularizer": None,
        "beta_constraint": None,
        "gamma_constraint": None,
        "synchronized": False,
        "renorm": False,
        "renorm_clipping": None,
        "renorm_momentum": 0.99,
    },
    "Flatten": {"data_format": ("channels_last", None)},  # the order gpunet flattens in
}
INITIALIZER_OFF = {"input_axes": None, "output_axes": None}
OPTIMIZER_OFF = {
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}
COMPILE_OFF = {
    "loss_weights": None,
    "weighted_metrics": None,
    "run_eagerly": False,
    "jit_compile": None,  # any value: XLA compilation does not apply to gpunet
    "auto_scale_loss": None,
}


def _drop_off(config: dict, off: dict, where: str, any_value=()) -> dict:
    config = dict(config)
    for option, value in off.items():
        if option in config:
            given = config.pop(option)
            allowed = value if isinstance(value, tuple) else (value,)
            if option not in any_value and given not in allowed:
                raise ValueError(
                    f"{where}: option {option!r} = {excerpt(given)} is not supported by gpunet "
                    f"(only {value!r})."
                )
    return config


def _dtype(config: dict, where: str) -> dict:
    """The config without its dtype (a name, or Keras's DTypePolicy dict), once that is checked
    to be float32."""
    dtype = config.get("dtype")
    name = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if name not in (None, "float32"):
        raise ValueError(f"{where}: dtype {excerpt(name)}: gpunet computes in float32.")
    return {key: value for key, value in config.items() if key != "dtype"}


def _initializer(value, where: str):
    if isinstance(value, dict) and isinstance(value.get("config"), dict):
        return {**value, "config": _drop_off(value["config"], INITIALIZER_OFF, where)}
    return value


def layer(entry: dict) -> dict:
    """A serialized layer from Keras 3's config.json, as gpunet's from_config takes it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        return entry  # deserialize_layer says what is wrong
    name = entry.get("class_name")
    layer_name = entry["config"].get("name")
    where = f"layer {name}" + (f" {layer_name!r}" if layer_name else "")
    config = _dtype(_drop_off(entry["config"], LAYER_OFF.get(name, {}), where), where)
    for key, value in config.items():
        if key.endswith("_initializer"):
            config[key] = _initializer(value, f"{where}: {key}")
    return {key: value for key, value in entry.items() if key != "build_config"} | {
        "config": config
    }


def optimizer(entry):
    """A serialized optimizer from Keras 3's compile config, as gpunet deserializes it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        return entry
    where = f"optimizer {entry.get('class_name')}"
    return {**entry, "config": _drop_off(entry["config"], OPTIMIZER_OFF, where)}


def compile_arguments(config) -> dict:
    """compile()'s arguments from Keras 3's compile_config."""
    if not isinstance(config, dict):
        raise ValueError(f"compile_config must be a dict, received {excerpt(config)}.")
    config = _drop_off(config, COMPILE_OFF, "compile_config", any_value=("jit_compile",))
    arguments = {"optimizer": optimizer(config.pop("optimizer", "rmsprop"))}
    for key in ("loss", "metrics", "steps_per_execution"):
        if key in config:
            arguments[key] = config.pop(key)
    if config:
        raise ValueError(f"compile_config: unknown options {sorted(config)}.")
    return arguments
