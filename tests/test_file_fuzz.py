"""Fuzzing what gpunet reads from disk: YAML text (structure, anchors and aliases, repeated keys,
nesting, numbers) either loads or raises one ConfigError line; a run directory's files
(checkpoint.npz, weights.npz, model.json) with bytes cut, flipped or replaced either load or
raise one DataError line naming the file. Nothing else escapes, nothing hangs."""

import json
import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpunet as gn
from gpunet import checkpoint, config, run, yamlfile
from gpunet.datasets.idx import DataError

TOKENS = [
    "a: ",
    "b: ",
    "seed: ",
    "fit: ",
    "epochs: ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "\n",
    "\n  ",
    "&x ",
    "&y ",
    "*x",
    "*y",
    "<<: *x",
    "1e-3",
    ".5",
    "-.5",
    "5E-4",
    "1_000",
    "0x1f",
    "!!str ",
    "!!python/object:os.system ",
    "~",
    "null",
    "yes",
    "'q'",
    '"q"',
    "? ",
    "#c",
    "\t",
    "\ufeff",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_any_yaml_text_loads_or_is_one_config_error_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        raw = config.load_raw(str(path))
    except config.ConfigError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message
        assert len(message) <= config.MAX_MESSAGE
        return
    try:
        config.from_dict(raw, str(path)) if isinstance(raw, dict) else None
    except config.ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) <= config.MAX_MESSAGE


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),  # fan-out of each anchored list
    st.integers(1, 12),  # levels of aliases
    st.integers(1, 200),  # nesting depth of a plain list
)
def test_alias_fan_out_and_nesting_are_bounded(fan_out, levels, depth):
    lines = [f"l0: &l0 [{', '.join(['x'] * fan_out)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fan_out)}]" for i in range(1, levels)]
    lines.append("deep: " + "[" * depth + "]" * depth)
    text = "\n".join(lines)
    expanded = sum(fan_out**i for i in range(1, levels + 1))
    try:
        yamlfile.load(text)
    except yamlfile.YamlError as exc:
        assert "more than 100,000 nodes" in str(exc) or "nested deeper than 50" in str(exc)
        assert expanded * 2 + 300 > yamlfile.MAX_NODES or depth + 1 > yamlfile.MAX_DEPTH
        return
    assert depth + 1 <= yamlfile.MAX_DEPTH


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run directory of a tiny model with Dropout and EarlyStopping."""
    folder = tmp_path_factory.mktemp("run")
    rs = np.random.default_rng(0)
    x = rs.random((40, 4), dtype=np.float32)
    np.savez(folder / "d.npz", x=x, y=(x[:, 0] > 0.5).astype(int))
    raw = {
        "seed": 0,
        "data": {"path": str(folder / "d.npz"), "validation_split": 0.25},
        "model": [
            {"type": "Dense", "units": 5, "activation": "relu"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 2, "activation": "softmax"},
        ],
        "compile": {"loss": "sparse_categorical_crossentropy", "optimizer": "adam"},
        "fit": {
            "epochs": 2,
            "batch_size": 8,
            "verbose": 0,
            "callbacks": [{"type": "EarlyStopping", "patience": 5}],
        },
        "output": {"dir": str(folder / "runs")},
    }
    cfg = config.from_dict(raw, "c.yaml")
    return run.train(cfg, "c.yaml", quiet=True).run_dir


def _damage(data: bytes, cuts, flips, splice) -> bytes:
    data = bytearray(data)
    for position, value in flips:
        data[position % len(data)] ^= value or 1
    if splice:
        at, junk = splice
        data[at % len(data) : at % len(data) + len(junk)] = junk
    if cuts is not None:
        data = data[: cuts % (len(data) + 1)]
    return bytes(data)


DAMAGE = st.tuples(
    st.none() | st.integers(0, 10**6),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3),
    st.none() | st.tuples(st.integers(0, 10**6), st.binary(max_size=16)),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(["checkpoint.npz", "weights.npz", "model.json"]),
    damage=DAMAGE,
)
def test_damaged_run_files_load_or_are_one_data_error_line(
    finished_run, tmp_path_factory, name, damage
):
    copy = str(tmp_path_factory.mktemp("damaged") / "run")
    shutil.copytree(finished_run, copy)
    path = os.path.join(copy, name)
    with open(path, "rb") as f:
        original = f.read()
    with open(path, "wb") as f:
        f.write(_damage(original, *damage))
    try:
        if name == "checkpoint.npz":
            cfg, model, _ = run.load_run(copy)
            epochs = model.resume_from(path)
            model.fit(
                np.zeros((8, 4), np.float32),
                np.zeros(8, int),
                epochs=epochs + 1,
                verbose=0,
                callbacks=[gn.callbacks.EarlyStopping(monitor="loss")],
            )
        else:
            run.load_run(copy)
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message and (copy in message or path in message), message
        return
    except config.ConfigError as exc:  # config.yaml is intact; only its neighbours are damaged
        pytest.fail(f"a damaged {name} surfaced as a config error: {exc}")


def test_the_fuzzed_files_are_whole_when_undamaged(finished_run):
    _, model, arrays = run.load_run(finished_run)
    assert set(arrays) == {"dense/kernel", "dense/bias", "dense_1/kernel", "dense_1/bias"}
    _, meta = checkpoint.load(os.path.join(finished_run, "checkpoint.npz"))
    assert meta["epoch"] == 2 and meta["callbacks"][0]["class"] == "EarlyStopping"
    with open(os.path.join(finished_run, "model.json")) as f:
        assert json.load(f)["input_shape"] == [4]


@settings(max_examples=40, deadline=None)
@given(units=st.integers(1, 10**13), features=st.integers(1, 10**6))
def test_any_layer_size_builds_or_says_how_much_memory_it_needs(units, features):
    raw = {
        "data": {"name": "fashion_mnist"},
        "model": [{"type": "Dense", "units": units}],
        "compile": {"loss": "mse", "optimizer": "sgd"},
    }
    cfg = config.from_dict(raw, "c.yaml")
    needed = (features * units + units) * 4 * 2  # float32 parameters and their gradients
    if needed > 2**30:  # more than this test should allocate: it must be refused, or skipped
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return
        if needed <= total:
            return
        with pytest.raises(MemoryError, match=r"parameters need [\d,.]+ GiB"):
            run.build_model(cfg, (features,))
        return
    model = run.build_model(cfg, (features,))
    assert model.count_params() == features * units + units
