"""Config YAML: YAML 1.2 floats, duplicate keys refused, bombs and deep nesting bounded."""

import time

import pytest

from gpunet import config, messages, yamlfile


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 1e-3),
        ("5E-4", 5e-4),
        ("1.0e3", 1000.0),
        ("+2e2", 200.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1.5", 1.5),
        ("12", 12),
        ("-3", -3),
        ("1_000", 1000),
        (".inf", float("inf")),
        ("1e", "1e"),
        ("e5", "e5"),
        ("1.2.3", "1.2.3"),
    ],
)
def test_yaml_1_2_floats_and_ints_keep_their_type(text, value):
    loaded = yamlfile.load(f"x: {text}")["x"]
    assert loaded == value and type(loaded) is type(value)


@pytest.mark.parametrize(
    "text, line",
    [("a: 1\nb: 2\na: 3\n", 3), ("{a: 1, a: 2}", 1), ("m:\n  - {k: 1}\n  - {k: 1, k: 2}\n", 3)],
)
def test_a_key_given_twice_is_refused_with_both_lines(text, line):
    with pytest.raises(yamlfile.YamlError) as info:
        yamlfile.load(text)
    assert info.value.line == line
    assert "is given twice (first on line" in str(info.value)


def test_merge_keys_may_be_overridden():
    text = "base: &b {units: 3, activation: relu}\nlayer:\n  <<: *b\n  units: 4\n"
    assert yamlfile.load(text)["layer"] == {"units": 4, "activation": "relu"}


def _alias_bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once_naming_its_line():
    start = time.perf_counter()
    with pytest.raises(yamlfile.YamlError) as info:
        yamlfile.load(_alias_bomb(9))  # 10**9 nodes once expanded
    assert time.perf_counter() - start < 5
    assert info.value.line == 5  # l4 is the first to pass 100,000 nodes
    assert "expands to more than 100,000 nodes" in str(info.value)
    assert yamlfile.load(_alias_bomb(3))["l2"][0][0] == ["x"] * 10  # small aliases still work


def test_a_recursive_alias_is_refused():
    with pytest.raises(yamlfile.YamlError, match="line 1: an alias refers to a node that"):
        yamlfile.load("a: &a [1, *a]")


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_deep_nesting_is_refused_without_recursion_error(opening, closing):
    depth = 10_000
    with pytest.raises(yamlfile.YamlError, match=f"nested deeper than {yamlfile.MAX_DEPTH}"):
        yamlfile.load("x: " + opening * depth + "1" + closing * depth)
    shallow = yamlfile.MAX_DEPTH - 2
    assert yamlfile.load("x: " + "[" * shallow + "1" + "]" * shallow)["x"]


def test_a_huge_document_is_refused_by_size():
    with pytest.raises(yamlfile.YamlError, match="a config may have at most 1,048,576"):
        yamlfile.load("x: " + "1" * yamlfile.MAX_BYTES)


def test_excerpt_is_short_for_any_value():
    nested = [[[[[1] * 1000] * 1000]]]
    assert len(messages.excerpt(nested)) <= 80
    assert messages.excerpt("x" * 5000).endswith("xxx'")
    assert len(messages.excerpt("x" * 5000)) <= 80
    assert messages.excerpt({"a": 1}) == "{'a': 1}"


def test_config_files_get_the_same_bounds(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("fit:\n  epochs: 2\n  epochs: 500\n")
    with pytest.raises(config.ConfigError) as info:
        config.load_raw(str(path))
    assert str(info.value) == (
        f"{path}: line 3: key 'epochs' is given twice (first on line 2); keep one."
    )
    path.write_text("seed: " + "[" * 200 + "]" * 200 + "\n")
    with pytest.raises(config.ConfigError, match=r"c.yaml: line 1: nested deeper than 50 levels"):
        config.load_raw(str(path))
    path.write_text(_alias_bomb(9) + "data: *l8\n")
    with pytest.raises(config.ConfigError) as info:
        config.load(str(path))
    assert len(str(info.value)) < 200
    with pytest.raises(config.ConfigError, match=r"--set: seed: value '\[\[\[\[\[\[\[\[\[\[\["):
        config.set_value({}, "seed=" + "[" * 100 + "]" * 100)
    path.write_bytes(b"\xef\xbb\xbfseed: 3\n")  # a byte-order mark, as some editors write
    assert config.load_raw(str(path)) == {"seed": 3}


def test_a_long_value_in_a_message_is_cut_to_an_excerpt():
    raw = {"data": {"name": "fashion_mnist"}, "model": [{"type": "Dense", "units": 3}]}
    raw["fit"] = {"epochs": list(range(100_000))}
    with pytest.raises(config.ConfigError) as info:
        config.from_dict(raw, "c.yaml")
    assert str(info.value) == "c.yaml: fit.epochs: expected an int, found [0, 1, 2, 3, ...]."
