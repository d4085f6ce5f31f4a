"""Any YAML document either validates or raises ConfigError (the CLI's exit 2), nothing else; a
document that validates builds its model and trains."""

import warnings

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpunet as gn
from gpunet import config, run

KEYS = [
    "seed",
    "backend",
    "data",
    "model",
    "compile",
    "fit",
    "output",
    "name",
    "path",
    "validation_split",
    "validation_samples",
    "loss",
    "optimizer",
    "metrics",
    "epochs",
    "batch_size",
    "type",
    "units",
    "activation",
    "rate",
    "callbacks",
    "class_weight",
    "verbose",
    "learning_rate",
    "momentum",
    "patience",
    "monitor",
    "label_column",
    "dir",
]
WORDS = [
    "Dense",
    "Dropout",
    "Flatten",
    "Activation",
    "relu",
    "softmax",
    "adam",
    "sgd",
    "mnist",
    "fashion_mnist",
    "auto",
    "numpy",
    "cupy",
    "accuracy",
    "EarlyStopping",
    "CSVLogger",
    "categorical_crossentropy",
    "mse",
    "val_loss",
    "min",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 10**7)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
    | st.sampled_from(WORDS)
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(KEYS) | SCALARS.filter(lambda v: v is not None), children, max_size=6
        )
    ),
    max_leaves=25,
)
PLAUSIBLE = st.fixed_dictionaries(
    {
        "data": st.fixed_dictionaries({"name": st.sampled_from(["mnist", "fashion_mnist"])}),
        "model": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(WORDS[:4]) | DOCUMENTS},
                optional={k: SCALARS for k in KEYS[12:24] if k != "type"},
            ),
            max_size=4,
        ),
        "compile": st.dictionaries(st.sampled_from(["loss", "optimizer", "metrics"]), DOCUMENTS),
        "fit": st.dictionaries(st.sampled_from(KEYS[13:23]), DOCUMENTS)
        | st.fixed_dictionaries(
            {
                "callbacks": st.lists(
                    st.fixed_dictionaries(
                        {
                            "type": st.sampled_from(
                                ["EarlyStopping", "CSVLogger", "ReduceLROnPlateau"]
                            )
                            | DOCUMENTS
                        },
                        optional={k: DOCUMENTS for k in ("patience", "monitor", "factor")},
                    ),
                    max_size=2,
                )
            }
        ),
    },
    optional={k: DOCUMENTS for k in ("seed", "backend", "output")},
)


def _targets(cfg, rs, n: int, outputs: int):
    """Labels a model of this config trains on: what its loss expects."""
    loss = gn.losses.get(cfg.compile.loss)
    if loss.sparse:
        return rs.integers(0, outputs, n)
    if loss.name in ("categorical_crossentropy", "binary_crossentropy"):
        labels = rs.integers(0, outputs, n) if outputs > 1 else rs.integers(0, 2, (n, 1))
        return np.eye(outputs, dtype=np.float32)[labels] if outputs > 1 else labels.astype("f4")
    return rs.standard_normal((n, outputs)).astype(np.float32)


def _train(cfg, tmp_path) -> None:
    """An accepted config builds its model and trains an epoch on data of the right shapes."""
    model = run.build_model(cfg, (4,), "fuzz.yaml")
    outputs = model.output_shape[-1]
    rs = np.random.default_rng(0)
    x = rs.random((12, 4), dtype=np.float32)
    y = _targets(cfg, rs, 12, outputs)
    callbacks = [
        config.build_callback(
            "fuzz.yaml",
            i,
            dict(
                spec,
                **(
                    {"filename": str(tmp_path / "log.csv")}
                    if spec.get("type") == "CSVLogger"
                    else {}
                ),
            ),
        )
        for i, spec in enumerate(cfg.fit.callbacks)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a monitor this tiny fit does not log
        history = model.fit(
            x,
            y,
            batch_size=cfg.fit.batch_size,
            epochs=1,
            verbose=0,
            shuffle=cfg.fit.shuffle,
            validation_split=0.25,
            class_weight=cfg.fit.class_weight,
            callbacks=callbacks,
        )
    assert len(history.epoch) == 1 and "loss" in history.history


def _validate(document, tmp_path=None) -> None:
    raw = yaml.safe_load(yaml.safe_dump(document))
    try:
        cfg = config.from_dict(raw, "fuzz.yaml")
    except config.ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml") and "\n" not in str(exc)
        return
    if tmp_path is not None:
        _train(cfg, tmp_path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_any_document(document):
    _validate(document)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=PLAUSIBLE)
def test_documents_shaped_like_configs_validate_or_train(tmp_path, document):
    _validate(document, tmp_path)


LAYER = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("Dense"), "units": st.integers(1, 6)},
        optional={
            "activation": st.sampled_from(sorted(gn.activations.NAMES)),
            "use_bias": st.booleans(),
            "kernel_regularizer": st.sampled_from(["l1", "l2", "l1_l2"]),
            "kernel_initializer": st.sampled_from(["he_normal", "zeros", "lecun_uniform"]),
        },
    ),
    st.fixed_dictionaries({"type": st.just("Dropout"), "rate": st.floats(0.0, 0.9)}),
    st.fixed_dictionaries({"type": st.just("Activation"), "activation": st.just("tanh")}),
)
VALID = st.fixed_dictionaries(
    {
        "data": st.just({"name": "mnist"}),
        "model": st.lists(LAYER, min_size=1, max_size=4).map(
            lambda layers: layers + [{"type": "Dense", "units": 3}]
        ),
        "compile": st.fixed_dictionaries(
            {
                "loss": st.sampled_from(
                    [
                        "categorical_crossentropy",
                        "sparse_categorical_crossentropy",
                        "mse",
                        "mae",
                        "huber",
                        "binary_crossentropy",
                    ]
                ),
                "optimizer": st.sampled_from(sorted(gn.optimizers._BY_NAME)),
                "metrics": st.lists(
                    st.sampled_from(["accuracy", "mae", "precision", "auc", "mse"]),
                    max_size=2,
                    unique=True,
                ),
            }
        ),
        "fit": st.fixed_dictionaries(
            {"batch_size": st.integers(1, 16), "shuffle": st.booleans()},
            optional={
                "callbacks": st.lists(
                    st.sampled_from(
                        [
                            {"type": "EarlyStopping", "patience": 0},
                            {"type": "ReduceLROnPlateau", "monitor": "loss", "patience": 0},
                            {"type": "CSVLogger", "filename": "log.csv"},
                            {"type": "TerminateOnNaN"},
                        ]
                    ),
                    max_size=2,
                ),
            },
        ),
    }
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=VALID)
def test_well_formed_configs_validate_and_train(tmp_path, document):
    # Valid pieces in any combination: the config validates, and its model trains an epoch.
    # (A softmax over 3 outputs with binary cross-entropy is odd but allowed, as in Keras.)
    raw = yaml.safe_load(yaml.safe_dump(document))
    _train(config.from_dict(raw, "fuzz.yaml"), tmp_path)


def test_the_fuzzed_shape_reaches_configs_that_train(tmp_path):
    # The strategy above must produce accepted configs, or its training check proves nothing.
    document = {
        "data": {"name": "mnist"},
        "model": [
            {"type": "Dense", "units": 5, "activation": "relu"},
            {"type": "Dropout", "rate": 0.5},
        ],
        "compile": {"loss": "categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"callbacks": [{"type": "EarlyStopping", "patience": 0}]},
    }
    _validate(document, tmp_path)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_text_file(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "c.yaml"
    path.write_text(text)
    try:
        config.load(str(path))
    except config.ConfigError:
        pass


BASE = {"data": {"name": "mnist"}, "model": [{"type": "Dense", "units": 3}]}


def _with(**sections):
    return {**BASE, **sections}


@pytest.mark.parametrize(
    "document, key",
    [
        ({"data": {"name": "mnist"}, "model": [{"type": ["Dense"]}]}, "model[0].type"),
        (
            {
                "data": {"name": "mnist"},
                "model": [{"type": "Dense", "units": 3, "activation": ["relu"]}],
            },
            "model[0].activation",
        ),
        (_with(fit={"callbacks": [{"type": {"a": 1}}]}), "fit.callbacks[0].type"),
        (
            _with(fit={"callbacks": [{"type": "EarlyStopping", "patience": "x"}]}),
            "fit.callbacks[0].patience",
        ),
        (
            _with(fit={"callbacks": [{"type": "EarlyStopping", "patience": 2.5}]}),
            "fit.callbacks[0].patience",
        ),
        (
            {"data": {"name": "mnist"}, "model": [{"type": "Dropout", "rate": 0.5, "seed": "x"}]},
            "model[0]",
        ),
        (
            {"data": {"name": "mnist"}, "model": [{"type": "Dense", "units": 3, "use_bias": 1}]},
            "model[0].use_bias",
        ),
        (_with(fit={"class_weight": {"a": 1}}), "fit.class_weight.a"),
        (_with(fit={"class_weight": {0: -1}}), "fit.class_weight.0"),
    ],
)
def test_wrongly_typed_values_are_config_errors(document, key):
    with pytest.raises(config.ConfigError) as info:
        config.from_dict(document, "f.yaml")
    assert str(info.value).startswith(f"f.yaml: {key}: ")


def test_mixed_type_arguments_still_accepted():
    document = _with(
        fit={"callbacks": [{"type": "BackupAndRestore", "backup_dir": "b", "save_freq": 10}]}
    )
    assert config.from_dict(document, "f.yaml").fit.callbacks[0]["save_freq"] == 10
