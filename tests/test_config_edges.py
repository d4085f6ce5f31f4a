"""Config edges the main config tests leave (found by mutation testing, issue 21): the message
cap, `--set` into list items, the file size bound, and values that are easy to get half right."""

import pytest
import yaml

from gpunet import config, yamlfile

BASE = {
    "data": {"name": "fashion_mnist"},
    "model": [{"type": "Dense", "units": 10, "activation": "softmax"}],
    "compile": {"loss": "categorical_crossentropy", "optimizer": "adam", "metrics": ["accuracy"]},
}


def _raw(**sections):
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    for name, value in sections.items():
        raw[name] = value
    return raw


def test_a_message_is_cut_only_past_the_cap_and_says_so():
    fits = config.ConfigError("c.yaml", "", "x" * (config.MAX_MESSAGE - len("c.yaml: ")))
    assert len(str(fits)) == config.MAX_MESSAGE and str(fits).endswith("x")
    cut = config.ConfigError("c.yaml", "", "x" * config.MAX_MESSAGE)
    assert len(str(cut)) == config.MAX_MESSAGE and str(cut).endswith("xxx...")


def test_every_validate_message_names_the_file():
    raw = _raw(compile={"loss": "mse", "optimizer": "sgd", "steps_per_execution": 0})
    with pytest.raises(config.ConfigError) as info:
        config.from_dict(raw, "c.yaml")
    assert str(info.value) == "c.yaml: compile.steps_per_execution: expected an int >= 1, found 0."


def test_callbacks_whose_option_takes_several_types():
    raw = _raw(
        fit={
            "callbacks": [
                {"type": "BackupAndRestore", "backup_dir": "b", "save_freq": 3},
                {"type": "BackupAndRestore", "backup_dir": "c", "save_freq": "epoch"},
            ]
        }
    )
    assert len(config.from_dict(raw, "c.yaml").fit.callbacks) == 2


@pytest.mark.parametrize("kind", [[1], {"a": 1}, 3])
def test_a_callback_type_that_is_not_a_name_is_refused(kind):
    raw = _raw(fit={"callbacks": [{"type": kind}]})
    with pytest.raises(config.ConfigError, match=r"fit.callbacks\[0\].type: unknown callback"):
        config.from_dict(raw, "c.yaml")


def test_a_class_weight_key_of_true_is_not_class_1():
    raw = _raw(fit={"class_weight": {True: 2.0}})
    with pytest.raises(config.ConfigError, match="class keys must be ints >= 0"):
        config.from_dict(raw, "c.yaml")


def test_set_replaces_a_whole_list_item():
    raw = _raw()
    config.set_value(raw, "model.0={type: Dense, units: 4}")
    assert raw["model"] == [{"type": "Dense", "units": 4}]
    config.set_value(raw, "compile.metrics.0=mae")
    assert raw["compile"]["metrics"] == ["mae"]


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("model.1.units=3", "'1' is not an index of the list; indices: 0."),
        ("model.1=3", "'1' is not an index of the list; indices: 0."),
        (
            "fit.callbacks.0.patience=3",
            "'0' is not an index of the list; indices: none, the list is empty.",
        ),
        ("seed.0=1", "'seed' is a value, not a section or a list."),
        ("compile.metrics.0.x=1", "'compile.metrics.0' is a value, not a section."),
        ("compile.metrics.0.x.y=1", "'compile.metrics.0' is a value, not a section or a list."),
        ("compile.metrics.-1=1", "'-1' is not an index of the list; indices: 0 to 1."),
    ],
)
def test_set_into_lists_names_what_is_wrong(assignment, message):
    raw = _raw(seed=3, fit={"callbacks": []})
    raw["compile"]["metrics"] = ["accuracy", "mae"]
    with pytest.raises(config.ConfigError) as info:
        config.set_value(raw, assignment)
    assert str(info.value) == f"--set: {assignment.split('=')[0]}: {message}"


def test_a_set_value_too_deep_says_why_in_full():
    with pytest.raises(config.ConfigError) as info:
        config.set_value({}, "seed=" + "[" * 60 + "]" * 60)
    assert str(info.value) == (
        "--set: seed: value '[[[[[[[[[[[[[[[[[...]]]]]]]]]]]]]]]]]]' is not valid YAML "
        "(nested deeper than 50 levels)."
    )


def test_a_config_of_exactly_the_size_bound_is_read_to_its_last_byte(tmp_path):
    path = tmp_path / "c.yaml"
    tail = "\nseed: 35"
    path.write_text("#" + "x" * (yamlfile.MAX_BYTES - 1 - len(tail)) + tail)
    assert path.stat().st_size == yamlfile.MAX_BYTES
    assert config.load_raw(str(path)) == {"seed": 35}
    path.write_text("#" + "x" * (yamlfile.MAX_BYTES - len(tail)) + tail)
    with pytest.raises(config.ConfigError) as info:
        config.load_raw(str(path))
    assert str(info.value) == f"{path}: larger than 1,048,576 bytes; a config is a few hundred."


def test_an_unreadable_config_says_permission_denied(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(config, "open", refuse, raising=False)
    with pytest.raises(config.ConfigError) as info:
        config.load_raw(str(path))
    assert str(info.value) == f"{path}: permission denied; the config cannot be read."
