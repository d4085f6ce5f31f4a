"""Any YAML document either validates or raises ConfigError (the CLI's exit 2), nothing else."""

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpunet import config

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


def _validate(document) -> None:
    raw = yaml.safe_load(yaml.safe_dump(document))
    try:
        config.from_dict(raw, "fuzz.yaml")
    except config.ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml") and "\n" not in str(exc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_any_document(document):
    _validate(document)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PLAUSIBLE)
def test_documents_shaped_like_configs(document):
    _validate(document)


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
