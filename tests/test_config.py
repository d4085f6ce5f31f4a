import glob
import os
import subprocess
import sys

import pytest
import yaml

from gpunet import cli, config
from tests.conftest import session_backend_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = {
    "data": {"name": "fashion_mnist"},
    "model": [{"type": "Dense", "units": 10, "activation": "softmax"}],
    "compile": {"loss": "categorical_crossentropy", "optimizer": "adam"},
}


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))), ids=os.path.basename
)
def test_shipped_configs_validate(path):
    cfg = config.load(path)
    assert cfg.model and cfg.fit.epochs >= 1


def _with(change):
    raw = yaml.safe_load(yaml.safe_dump(BASE))
    change(raw)
    return raw


@pytest.mark.parametrize(
    "change, key, message",
    [
        (lambda r: r.update(fit={"epoch": 3}), "fit.epoch", "Did you mean 'epochs'"),
        (lambda r: r.update(fit={"epochs": "ten"}), "fit.epochs", "expected an int, found 'ten'"),
        (lambda r: r.update(fit={"batch_size": 0}), "fit.batch_size", "expected an int >= 1"),
        (
            lambda r: r["model"].append({"type": "Dens", "units": 3}),
            "model[1].type",
            "Unknown layer 'Dens'",
        ),
        (
            lambda r: r["model"][0].update(activation="rellu"),
            "model[0].activation",
            "Unknown activation 'rellu'",
        ),
        (lambda r: r["model"][0].update(unit=3), "model[0].unit", "Did you mean 'units'"),
        (
            lambda r: r["model"].insert(0, {"type": "Dropout", "rate": 1.5}),
            "model[0]",
            r"rate must be a float in \[0, 1\)",
        ),
        (
            lambda r: r["compile"].update(optimizer={"name": "adamm"}),
            "compile.optimizer.name",
            "unknown optimizer 'adamm'",
        ),
        (
            lambda r: r["compile"].update(optimizer={"name": "sgd", "learnig_rate": 1}),
            "compile.optimizer.learnig_rate",
            "Did you mean 'learning_rate'",
        ),
        (
            lambda r: r["compile"].update(metrics=["acuracy"]),
            "compile.metrics[0]",
            "Unknown metric",
        ),
        (lambda r: r["compile"].update(loss="mse2"), "compile.loss", "Unknown loss"),
        (lambda r: r.update(backend="tpu"), "backend", "'tpu' is not allowed"),
        (lambda r: r["data"].update(name="cifar"), "data.name", "'cifar' is not allowed"),
        (lambda r: r["data"].update(validation_split=1.2), "data.validation_split", r"\[0, 1\)"),
        (lambda r: r.update(model=[]), "model", "non-empty list"),
        (lambda r: r.update(seeed=1), "seeed", "Did you mean 'seed'"),
        (lambda r: r.update(seed=-1), "seed", "expected an int >= 0, found -1"),
        (lambda r: r.update(fit={"epochs": 0}), "fit.epochs", "expected an int >= 1, found 0"),
        (
            lambda r: r["data"].update(validation_samples=0),
            "data.validation_samples",
            "expected an int >= 1, found 0",
        ),
        (
            lambda r: r.update(fit={"validation_batch_size": 0}),
            "fit.validation_batch_size",
            "expected an int >= 1, found 0",
        ),
        (lambda r: r.update(fit={"verbose": 3}), "fit.verbose", "3 is not allowed"),
        (
            lambda r: r["model"].insert(0, {"type": "Dense"}),
            "model[0].units",
            "required by Dense, missing; its arguments: units, activation",
        ),
        (
            lambda r: r.update(fit={"callbacks": [{"type": "CSVLogger"}]}),
            "fit.callbacks[0].filename",
            "required by CSVLogger, missing",
        ),
    ],
)
def test_bad_values_name_the_key_path(change, key, message, tmp_path, capsys):
    with pytest.raises(config.ConfigError, match=message) as info:
        config.from_dict(_with(change), "c.yaml")
    assert str(info.value).startswith(f"c.yaml: {key}: ")
    assert "\n" not in str(info.value)
    # The same file through the CLI: exit 2, one line, no traceback, nothing written.
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_with(change)))
    assert cli.main(["train", str(path), "--output", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: {key}: ")
    assert not (tmp_path / "runs").exists()


def test_set_overrides_nested_values():
    raw = _with(lambda r: None)
    config.set_value(raw, "fit.epochs=5")
    config.set_value(raw, "compile.optimizer={name: sgd, learning_rate: 0.1}")
    cfg = config.from_dict(raw, "c.yaml")
    assert cfg.fit.epochs == 5 and cfg.compile.optimizer["learning_rate"] == 0.1
    with pytest.raises(config.ConfigError, match="expected KEY=VALUE"):
        config.set_value(raw, "fit.epochs")


@pytest.mark.parametrize(
    "content, message",
    [
        ("model: [\n", "c.yaml: line 2: invalid YAML"),
        ("- 1\n- 2\n", "expected a mapping at the top level"),
        ("!!python/object:os.system {}\n", "invalid YAML"),  # safe_load refuses tags
    ],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    with pytest.raises(config.ConfigError, match=message):
        config.load(str(path))


def test_cli_bad_config_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_with(lambda r: r["model"][0].update(activation="rellu"))))
    out = subprocess.run(
        [sys.executable, "-m", "gpunet", "train", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, **session_backend_env()),
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: {path}: model[0].activation: Unknown activation "
        "'rellu'. Did you mean 'relu'? Allowed: elu, exponential, gelu, hard_sigmoid, "
        "leaky_relu, linear, relu, selu, sigmoid, silu, softmax, "
        "softplus, softsign, tanh, swish."
    )
    missing = subprocess.run(
        [sys.executable, "-m", "gpunet", "train", str(tmp_path / "no.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no.yaml: no such file" in missing.stderr


@pytest.mark.parametrize("fit", [{"epochs": 1}, {"verbose": 0}, {"validation_batch_size": 1}])
def test_edge_values_that_are_allowed(fit):
    # The lowest allowed values pass, so each rule above rejects only what it names.
    cfg = config.from_dict(_with(lambda r: r.update(seed=0, fit=fit)), "c.yaml")
    assert cfg.seed == 0 and all(getattr(cfg.fit, k) == v for k, v in fit.items())


def test_validation_samples_take_the_last_samples(tmp_path):
    import numpy as np

    from gpunet import run_data

    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    y = np.arange(10) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    raw = {
        "data": {"path": str(tmp_path / "d.npz"), "validation_samples": 3},
        "model": [{"type": "Dense", "units": 3, "activation": "softmax"}],
        "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "sgd"},
    }
    data = run_data.load_data(config.from_dict(raw, "c.yaml"))
    np.testing.assert_array_equal(data.x_train, x[:7])
    np.testing.assert_array_equal(data.validation[0], x[7:])
    np.testing.assert_array_equal(data.validation[1], y[7:])
    raw["data"]["validation_samples"] = 10
    with pytest.raises(config.ConfigError, match="leaves no training data out of 10 samples"):
        run_data.load_data(config.from_dict(raw, "c.yaml"))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update(fit=[1]), "c.yaml: fit: expected a mapping, found [1]."),
        (
            lambda r: r.update(fit={"epochs": [3]}),
            "c.yaml: fit.epochs: expected an int, found [3].",
        ),
        (
            lambda r: r.update(fit={"shuffle": "yes"}),
            "c.yaml: fit.shuffle: expected true/false, found 'yes'.",
        ),
        (
            lambda r: r.update(fit={"callbacks": [7]}),
            "c.yaml: fit.callbacks[0]: expected a mapping with a 'type' key (e.g. type: "
            "EarlyStopping), found 7.",
        ),
        (
            lambda r: r.update(fit={"callbacks": [{"type": "Early"}]}),
            "c.yaml: fit.callbacks[0].type: unknown callback 'Early'; expected one of "
            "EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger, TerminateOnNaN, "
            "BackupAndRestore.",
        ),
        (
            lambda r: r.update(fit={"callbacks": [{"type": "EarlyStopping", "mode": "up"}]}),
            "c.yaml: fit.callbacks[0]: EarlyStopping: mode must be 'auto', 'min' or 'max', "
            "received 'up'.",
        ),
        (
            lambda r: r.update(fit={"callbacks": [{"type": "EarlyStopping", "patienc": 1}]}),
            "c.yaml: fit.callbacks[0].patienc: unknown key. Did you mean 'patience'? Allowed: "
            "monitor, min_delta, patience, verbose, mode, baseline, restore_best_weights, "
            "start_from_epoch.",
        ),
        (
            lambda r: r.update(fit={"callbacks": [{"type": "EarlyStopping", "zzz": 1}]}),
            "c.yaml: fit.callbacks[0].zzz: unknown key. Allowed: monitor, min_delta, patience, "
            "verbose, mode, baseline, restore_best_weights, start_from_epoch.",
        ),
        (
            lambda r: r["data"].update(validation_split="x"),
            "c.yaml: data.validation_split: expected a number, found 'x'.",
        ),
        (
            lambda r: r.update(
                compile={"loss": "mse", "optimizer": {"name": "sgd", "momentum": "x"}}
            ),
            "c.yaml: compile.optimizer.momentum: expected a number, found 'x'.",
        ),
    ],
)
def test_messages_in_full(change, message):
    # The whole line a user reads: what was wrong, where, and what is allowed.
    with pytest.raises(config.ConfigError) as info:
        config.from_dict(_with(change), "c.yaml")
    assert str(info.value) == message


def test_file_and_override_messages_in_full(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("[1, 2]\n")
    with pytest.raises(config.ConfigError) as info:
        config.load(str(path))
    assert str(info.value) == f"{path}: expected a mapping at the top level, found [1, 2]."
    path.write_text(yaml.safe_dump(BASE))
    for override, message in [
        ("fit.epochs", "--set: fit.epochs: expected KEY=VALUE, e.g. fit.epochs=5."),
        ("data.name.x=3", "--set: data.name.x: 'name' is a value, not a section or a list."),
        ("model.5.units=3", "--set: model.5.units: '5' is not an index of the list; indices: 0."),
        ("model.x.units=3", "--set: model.x.units: 'x' is not an index of the list; indices: 0."),
        (
            "fit..epochs=3",
            "--set: fit..epochs: expected a key path such as fit.epochs or model.0.units.",
        ),
        ("compile.loss.x=3", "--set: compile.loss.x: 'loss' is a value, not a section or a list."),
        (
            "zzz.y=1",
            f"{path}: zzz: unknown key. Allowed: seed, backend, data, model, compile, fit, output.",
        ),
    ]:
        with pytest.raises(config.ConfigError) as info:
            config.load(str(path), [override])
        assert str(info.value) == message


def test_set_reaches_layer_arguments_by_index(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE))
    cfg = config.load(str(path), ["model.0.units=64", "model[0].activation=relu"])
    assert cfg.model[0] == {"type": "Dense", "units": 64, "activation": "relu"}
    cfg = config.load(
        str(path), ["compile.optimizer={name: sgd}", "compile.optimizer.momentum=5e-1"]
    )
    assert cfg.compile.optimizer == {"name": "sgd", "momentum": 0.5}  # a YAML 1.2 float


def test_execution_options_reach_compile(tmp_path):
    from gpunet import run

    path = tmp_path / "c.yaml"
    path.write_text(
        "data: {name: fashion_mnist}\nmodel: [{type: Dense, units: 3, activation: softmax}]\n"
        "compile: {steps_per_execution: 8, cuda_graphs: false}\n"
    )
    cfg = config.load(str(path))
    model = run.build_model(cfg, (4,))
    assert (model.steps_per_execution, model.cuda_graphs) == (8, False)
    for text, message in (
        ("steps_per_execution: 0", "compile.steps_per_execution: expected an int >= 1"),
        ("cuda_graphs: 3", "compile.cuda_graphs: expected true/false"),
    ):
        path.write_text(
            f"data: {{name: fashion_mnist}}\nmodel: [{{type: Dense, units: 3}}]\n"
            f"compile: {{{text}}}\n"
        )
        with pytest.raises(config.ConfigError, match=message):
            config.load(str(path))


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("fit", "epochs", "x", "expected an int, found 'x'."),
        ("fit", "shuffle", 3, "expected true/false, found 3."),
        ("data", "name", 3, "expected a string or null, found 3."),
        ("output", "dir", 3, "expected a string, found 3."),
        ("compile", "metrics", "accuracy", "expected a list, found 'accuracy'."),
        ("compile", "optimizer", 5, "expected a string or a mapping, found 5."),
        ("fit", "validation_batch_size", "x", "expected an int or null, found 'x'."),
        ("fit", "class_weight", 3, "expected a mapping or null, found 3."),
        ("data", "validation_split", "x", "expected a number, found 'x'."),
    ],
)
def test_a_wrong_type_names_the_type_the_key_takes(section, key, value, expected):
    def change(raw):
        raw.setdefault(section, {})[key] = value

    with pytest.raises(config.ConfigError) as info:
        config.from_dict(_with(change), "c.yaml")
    assert str(info.value) == f"c.yaml: {section}.{key}: {expected}"


def test_set_takes_the_first_equals_sign_and_reaches_three_levels():
    raw = _with(lambda r: r["compile"].update(optimizer={"name": "sgd", "learning_rate": 0.1}))
    config.set_value(raw, "compile.optimizer.learning_rate=0.5")
    config.set_value(raw, "data.path=a=b.csv")  # the value keeps its own '='
    assert raw["compile"]["optimizer"] == {"name": "sgd", "learning_rate": 0.5}
    assert raw["data"]["path"] == "a=b.csv"
    with pytest.raises(config.ConfigError) as info:
        config.set_value(raw, "fit.epochs=[1", "--set")
    assert str(info.value).startswith("--set: fit.epochs: value '[1' is not valid YAML (")


def test_a_config_error_is_one_line_and_shows_odd_keys_quoted():
    error = config.ConfigError("c.yaml", "fit.a\tb", "first line\nsecond line")
    assert str(error) == "c.yaml: 'fit.a\\tb': first line second line"
    assert str(config.ConfigError("c.yaml", "", "no key")) == "c.yaml: no key"


def test_missing_and_directory_config_paths(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(config.ConfigError) as info:
        config.load(missing)
    assert str(info.value) == f"{missing}: no such file."
    with pytest.raises(config.ConfigError) as info:
        config.load(str(tmp_path))
    assert str(info.value) == f"{tmp_path}: is a directory; expected a YAML config file."


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b"model: [\n",
            "line 2: invalid YAML (expected the node content, but found '<stream end>').",
        ),
        (
            b"a:\n\tb: 1\n",
            "line 2: invalid YAML (found character '\\t' that cannot start any token).",
        ),
        (b"\xff\xfe\x00bad", "not a text file (a config is UTF-8 YAML)."),
    ],
    ids=["unclosed", "tab", "binary"],
)
def test_unreadable_yaml_says_where_and_what_in_full(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(config.ConfigError) as info:
        config.load_raw(str(path))
    assert str(info.value) == f"{path}: {message}"


def test_an_empty_config_file_is_an_empty_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# nothing but a comment\n")
    assert config.load_raw(str(path)) == {}


DENSE = [{"type": "Dense", "units": 3}]


@pytest.mark.parametrize(
    "raw, message",
    [
        ([1], "c.yaml: expected a mapping at the top level, found [1]."),
        ({"seed": "x", "model": DENSE}, "c.yaml: seed: expected an int or null, found 'x'."),
        ({"fit": 3, "model": DENSE}, "c.yaml: fit: expected a mapping, found 3."),
        (
            {"model": DENSE},
            "c.yaml: data: give a data set name (mnist, fashion_mnist) or a path to your own "
            ".npz/.npy/.csv file.",
        ),
        (
            {"data": {"name": "fashion_mnist"}, "model": []},
            "c.yaml: model: expected a non-empty list of layers.",
        ),
        (
            {"data": {"name": "fashion_mnist", "validation_split": 1.0}, "model": DENSE},
            "c.yaml: data.validation_split: expected a number in [0, 1), found 1.0.",
        ),
        (
            {"data": {"name": "fashion_mnist", "validation_samples": 0}, "model": DENSE},
            "c.yaml: data.validation_samples: expected an int >= 1, found 0.",
        ),
        (
            {"data": {"name": "fashion_mnist"}, "model": DENSE, "compile": {"precision": "fp8"}},
            "c.yaml: compile.precision: 'fp8' is not allowed; expected one of float32, tf32, bf16.",
        ),
        (
            {"data": {"name": "fashion_mnist"}, "model": [{"units": 3}]},
            "c.yaml: model[0]: expected a mapping with a 'type' key (e.g. type: Dense), found "
            "{'units': 3}.",
        ),
        (
            {"data": {"name": "fashion_mnist"}, "model": ["Dense"]},
            "c.yaml: model[0]: expected a mapping with a 'type' key (e.g. type: Dense), found "
            "'Dense'.",
        ),
        (
            {"data": {"name": "fashion_mnist"}, "model": [{"type": "Dense"}]},
            "c.yaml: model[0].units: required by Dense, missing; its arguments: units, "
            "activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer, "
            "bias_regularizer, name, input_shape, input_dim.",
        ),
    ],
    ids=lambda v: None if isinstance(v, str) else str(v)[:40],
)
def test_validation_messages_in_full(raw, message):
    with pytest.raises(config.ConfigError) as info:
        config.from_dict(raw, "c.yaml")
    assert str(info.value) == message


def test_the_smallest_validation_part_and_the_keras_2_layer_arguments_are_accepted():
    cfg = config.from_dict(
        {
            "data": {"name": "fashion_mnist", "validation_samples": 1},
            "model": [
                {"type": "Dense", "units": 3, "input_dim": 4, "name": "first"},
                {"type": "Dense", "units": 2, "input_shape": [3]},
            ],  # fmt: skip
        },
        "c.yaml",
    )
    assert cfg.data.validation_samples == 1 and cfg.model[0]["name"] == "first"


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"learning_rate": 0.1},
            "c.yaml: compile.optimizer: a mapping needs a 'name' (e.g. name: adam).",
        ),
        (
            {"name": "nope"},
            "c.yaml: compile.optimizer.name: unknown optimizer 'nope'; expected one of adagrad, "
            "adam, adamax, adamw, nadam, rmsprop, sgd.",
        ),
        (
            {"name": "sgd", "learning_rate": -1},
            "c.yaml: compile.optimizer: SGD: learning_rate must be in [0.0, inf), received -1.",
        ),
        ("nope", "c.yaml: compile.optimizer: Unknown optimizer 'nope'"),
    ],
)
def test_optimizer_messages_in_full(spec, message):
    with pytest.raises(config.ConfigError) as info:
        config.build_optimizer("c.yaml", spec)
    assert str(info.value).startswith(message)


def test_an_optimizer_mapping_passes_its_arguments_but_not_its_name():
    optimizer = config.build_optimizer("c.yaml", {"name": "adam", "learning_rate": 0.01})
    assert type(optimizer).__name__ == "Adam" and optimizer.learning_rate == 0.01
    assert config.build_optimizer("c.yaml", {"name": "sgd", "lr": 0.5}).learning_rate == 0.5


def test_yaml_the_reader_refuses_has_no_line_to_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"a: \x07\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_raw(str(path))
    assert str(info.value).startswith(
        f"{path}: ?: invalid YAML (unacceptable character #x0007: special characters are not"
    )


@pytest.mark.parametrize(
    "fit, message",
    [
        ({"epochs": 0}, "fit.epochs: expected an int >= 1, found 0."),
        ({"batch_size": 0}, "fit.batch_size: expected an int >= 1, found 0."),
        (
            {"class_weight": {-1: 1.0}},
            "fit.class_weight.-1: class keys must be ints >= 0 (class indices).",
        ),
        ({"class_weight": {0: -1}}, "fit.class_weight.0: expected a finite number >= 0, found -1."),
        (
            {"class_weight": {0: "x"}},
            "fit.class_weight.0: expected a finite number >= 0, found 'x'.",
        ),
        (
            {"class_weight": {0: True}},
            "fit.class_weight.0: expected a finite number >= 0, found True.",
        ),
        (
            {"class_weight": {0: float("nan")}},
            "fit.class_weight.0: expected a finite number >= 0, found nan.",
        ),
        (
            {"class_weight": {1: float("inf")}},
            "fit.class_weight.1: expected a finite number >= 0, found inf.",
        ),
    ],
)
def test_fit_messages_in_full(fit, message):
    raw = {"data": {"name": "fashion_mnist"}, "model": DENSE, "fit": fit}
    with pytest.raises(config.ConfigError) as info:
        config.from_dict(raw, "c.yaml")
    assert str(info.value) == f"c.yaml: {message}"


def test_the_edges_of_fit_are_accepted():
    raw = {"data": {"name": "fashion_mnist"}, "model": DENSE,
           "fit": {"verbose": 1, "class_weight": {0: 0.0, 1: 2}}}  # fmt: skip
    cfg = config.from_dict(raw, "c.yaml")
    assert cfg.fit.verbose == 1 and cfg.fit.class_weight == {0: 0.0, 1: 2}
    # The optimizer's name is its own (lower case), whatever the case the config wrote.
    assert config.build_optimizer("c.yaml", {"name": "Adam"}).name == "adam"
