"""One-line message pieces (gpunet/messages.py): excerpts and did-you-mean for unknown names."""

import pytest

import gpunet as gn
from gpunet import messages


@pytest.mark.parametrize(
    "get, name, suggestion",
    [
        (gn.layers.get, "dropout", "Dropout"),
        (gn.layers.get, "Dens", "Dense"),
        (gn.activations.get, "rellu", "relu"),
        (gn.losses.get, "categorical_crossentropi", "categorical_crossentropy"),
        (gn.optimizers.get, "Adamm", "adam"),
        (gn.initializers.get, "he_normall", "he_normal"),
        (gn.regularizers.get, "L22", "L2"),
        (lambda name: gn.metrics.get(name, (2, 3), (2, 3)), "acuracy", "accuracy"),
    ],
)
def test_unknown_names_suggest_the_closest(get, name, suggestion):
    with pytest.raises(ValueError) as info:
        get(name)
    message = str(info.value)
    assert f"{name!r}. Did you mean {suggestion!r}? Allowed: " in message
    assert "\n" not in message


def test_a_name_differing_only_in_case_comes_first():
    error = messages.unknown_name("layer", "DROPOUT", ["Dense", "Dropout", "Flatten"])
    assert str(error) == (
        "Unknown layer 'DROPOUT'. Did you mean 'Dropout'? Allowed: Dense, Dropout, Flatten."
    )


def test_nothing_close_and_non_strings_get_no_suggestion():
    assert str(messages.unknown_name("loss", "zzz", ["mse", "mae"])) == (
        "Unknown loss 'zzz'. Allowed: mse, mae."
    )
    assert str(messages.unknown_name("loss", ["x"] * 500, ["mse"])).startswith(
        "Unknown loss ['x', 'x', 'x', 'x', ...]. Allowed: mse."
    )
