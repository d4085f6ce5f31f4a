"""Malformed configs, data files, run directories, paths and arguments against the `gpunet` CLI
(issue 18): each case says what a user gets, and the counts by class show what still escapes.

    .venv/bin/python bench/adversarial.py            # all cases, a table and the counts
    .venv/bin/python bench/adversarial.py yaml paths  # only some classes

A case passes when the CLI does what the brief asks: bad input -> exit 2 and one line on stderr
naming what was wrong (no traceback, no partial run directory left); good input -> exit 0.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 60


@dataclass
class Case:
    group: str
    name: str
    argv: list  # after `gpunet`; "{w}" is the work folder
    config: dict | str | None = None  # written to {w}/c.yaml (a str verbatim)
    files: dict = field(default_factory=dict)  # name -> bytes or callable(folder)
    expect: str = "refused"  # refused | accepted
    mentions: str | None = None  # text the one line must hold (a path, a key)


def base_config(w: str, **changes) -> dict:
    cfg = {
        "seed": 1,
        "data": {"path": f"{w}/data.npz", "test_path": f"{w}/data.npz", "validation_split": 0.25},
        "model": [
            {"type": "Dense", "units": 8, "activation": "relu"},
            {"type": "Dense", "units": 3, "activation": "softmax"},
        ],
        "compile": {
            "loss": "sparse_categorical_crossentropy",
            "optimizer": "adam",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 2, "batch_size": 16, "verbose": 0},
        "output": {"dir": f"{w}/runs"},
    }
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return cfg


_DELETE = object()


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _data(w: str) -> None:
    rs = np.random.default_rng(0)
    x = rs.random((64, 5), dtype=np.float32)
    y = x[:, :3].argmax(axis=1)
    with open(f"{w}/data.npz", "wb") as f:
        f.write(_npz(x=x, y=y))
    with open(f"{w}/wide.npz", "wb") as f:
        f.write(_npz(x=rs.random((16, 7), dtype=np.float32), y=y[:16]))
    with open(f"{w}/x.npy", "wb") as f:
        np.save(f, x)


def _huge_npy_header() -> bytes:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (400000000000,), }"
    header += " " * (63 - len(header) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def _gzip_bomb() -> bytes:
    # an IDX images header declaring 10**6 images of 28x28, then zeros: 784 MB from ~0.8 MB
    header = struct.pack(">IIII", 0x00000803, 1_000_000, 28, 28)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as f:
        f.write(header)
        chunk = bytes(1 << 20)
        for _ in range(784):
            f.write(chunk)
    return out.getvalue()


def _alias_bomb() -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\nseed: *l8\n"


def _finished_run(w: str) -> str:
    """Train the base config once; later cases break copies of its run directory."""
    path = f"{w}/good.yaml"
    with open(path, "w") as f:
        yaml.safe_dump(base_config(w, output={"dir": f"{w}/good-runs"}), f)
    subprocess.run(_gpunet("train", path, "--quiet"), check=True, capture_output=True)
    (run,) = os.listdir(f"{w}/good-runs")
    return f"{w}/good-runs/{run}"


def _gpunet(*argv) -> list:
    if argv and argv[0] in API_CASES:  # the Python API: a ValueError is its "exit 2"
        return [sys.executable, "-c", API_PRELUDE + API_CASES[argv[0]] + API_POSTLUDE]
    return [sys.executable, "-m", "gpunet", *argv]


API_PRELUDE = """
import sys, numpy as np, gpunet as gn
x = np.random.default_rng(0).random((32, 4), dtype=np.float32); y = (x[:, 0] > 0.5).astype(int)
model = gn.Sequential([gn.layers.Input((4,)), gn.layers.Dense(2, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
try:
"""
API_POSTLUDE = """
except (ValueError, TypeError) as exc:
    print("error:", exc, file=sys.stderr); sys.exit(2)
"""
API_CASES = {
    "api-callbacks": "    model.fit(x, y, callbacks=5, verbose=0)",
    "api-numpy-epochs": "    model.fit(x, y, epochs=np.int64(2), batch_size=np.int32(8))",
}


def _broken_run(kind: str):
    """A copy of the finished run with one file broken in a `kind` way; returns its path."""

    def make(w: str) -> str:
        target = tempfile.mkdtemp(dir=w, prefix=f"broken-{kind}-")
        shutil.copytree(f"{w}/good-run", target, dirs_exist_ok=True)
        weights, model_json = f"{target}/weights.npz", f"{target}/model.json"
        data = open(weights, "rb").read()
        if kind == "truncated":
            open(weights, "wb").write(data[: len(data) // 2])
        elif kind == "bitflip":
            flipped = bytearray(data)
            flipped[len(data) // 3] ^= 0xFF
            open(weights, "wb").write(bytes(flipped))
        elif kind == "object-member":
            buffer = io.BytesIO()
            np.savez(buffer, **{"dense/kernel": np.array([{"a": 1}], dtype=object)})
            open(weights, "wb").write(buffer.getvalue())
        elif kind == "zero-d":
            with np.load(weights) as archive:
                arrays = {k: archive[k] for k in archive.files}
            arrays = {k: np.float32(1.0) for k in arrays}
            open(weights, "wb").write(_npz(**arrays))
        elif kind == "deflate64":  # a compression method zipfile cannot read
            with np.load(weights) as archive:
                arrays = {k: archive[k] for k in archive.files}
            with zipfile.ZipFile(weights, "w", compression=zipfile.ZIP_STORED) as z:
                for key, value in arrays.items():
                    buffer = io.BytesIO()
                    np.save(buffer, value)
                    z.writestr(key + ".npy", buffer.getvalue())
            raw = bytearray(open(weights, "rb").read())
            for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
                at = raw.find(signature)
                while at >= 0:
                    raw[at + offset : at + offset + 2] = struct.pack("<H", 9)
                    at = raw.find(signature, at + 4)
            open(weights, "wb").write(bytes(raw))
        elif kind == "model-json-list":
            open(model_json, "w").write("[1, 2]\n")
        elif kind == "model-json-keys":
            open(model_json, "w").write('{"layers": []}\n')
        elif kind == "no-weights":
            os.remove(weights)
        return target

    return make


def _broken_checkpoint(kind: str):
    def make(w: str) -> str:
        target = tempfile.mkdtemp(dir=w, prefix=f"ckpt-{kind}-")
        shutil.copytree(f"{w}/good-run", target, dirs_exist_ok=True)
        path = f"{target}/checkpoint.npz"
        data = open(path, "rb").read()
        if kind == "truncated":
            open(path, "wb").write(data[: len(data) // 2])
        elif kind == "bitflip":
            flipped = bytearray(data)
            flipped[len(data) // 2] ^= 0xFF
            open(path, "wb").write(bytes(flipped))
        else:
            with np.load(path) as archive:
                arrays = {k: archive[k] for k in archive.files}
            meta = json.loads(arrays["meta"].tobytes())
            if kind == "meta-missing":
                del meta["dropout_streams"], meta["history"]
            elif kind == "meta-types":
                meta["epoch"], meta["step"] = "one", [2]
            elif kind == "params-shape":
                arrays["params"] = arrays["params"][:-5]
            elif kind == "nonfinite":
                arrays["params"] = np.full_like(arrays["params"], np.nan)
            arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
            open(path, "wb").write(_npz(**arrays))
        return target

    return make


def cases(w: str) -> list[Case]:
    c = f"{w}/c.yaml"
    own = base_config(w, output={"dir": f"{w}/good-runs"})  # the good run's config
    return [
        # --- YAML ----------------------------------------------------------------------------
        Case("yaml", "alias bomb", ["train", c], _alias_bomb()),
        Case("yaml", "deep list", ["train", c], "seed: " + "[" * 5000 + "]" * 5000 + "\n"),
        Case(
            "yaml",
            "deep --set",
            ["train", c, "--set", "seed=" + "[" * 5000 + "]" * 5000],
            base_config(w),
        ),
        Case(
            "yaml",
            "duplicate key",
            ["train", c],
            yaml.safe_dump(base_config(w)) + "seed: 2\n",
            mentions="twice",
        ),
        Case(
            "yaml",
            "learning_rate 1e-3",
            ["train", c, "--quiet"],
            base_config(w, compile__optimizer={"name": "adam", "learning_rate": "@1e-3"}),
            expect="accepted",
        ),
        Case(
            "yaml",
            "--set 5e-4",
            ["train", c, "--quiet", "--set", "compile.optimizer={name: sgd, learning_rate: 5e-4}"],
            base_config(w),
            expect="accepted",
        ),
        Case(
            "yaml",
            "--set layer units",
            ["train", c, "--quiet", "--set", "model.0.units=4"],
            base_config(w),
            expect="accepted",
        ),
        Case("yaml", "top-level list", ["train", c], "- 1\n- 2\n"),
        Case("yaml", "python tag", ["train", c], "!!python/object/apply:os.system ['true']\n"),
        # --- sizes -----------------------------------------------------------------------------
        Case("sizes", "units 1e12", ["train", c], base_config(w, model__0__units=10**12)),
        Case(
            "sizes",
            "npy header 4e11",
            ["train", c],
            base_config(w, data={"path": f"{w}/huge.npy", "labels_path": f"{w}/huge.npy"}),
            {"huge.npy": _huge_npy_header()},
            mentions="huge.npy",
        ),
        Case(
            "sizes",
            "gzip bomb idx",
            ["train", c],
            base_config(w, data={"name": "mnist", "path": f"{w}/bomb"}),
            {"bomb": lambda w: _mnist_bomb(w)},
        ),
        Case(
            "sizes",
            "npz member header 4e11",
            ["train", c],
            base_config(w, data={"path": f"{w}/huge.npz"}),
            {"huge": lambda w: _npz_huge_member(w)},
            mentions="huge.npz",
        ),
        Case(
            "sizes",
            "batch_size 1e12",
            ["train", c],
            base_config(w, fit__batch_size=10**12),
            expect="accepted",
        ),  # Keras clamps a batch to the data
        # --- values checked too late ------------------------------------------------------------
        Case(
            "late",
            "class_weight nan",
            ["train", c],
            base_config(w, fit__class_weight={0: float("nan"), 1: 1.0, 2: 1.0}),
        ),
        Case(
            "late",
            "class_weight inf",
            ["train", c],
            base_config(w, fit__class_weight={0: float("inf"), 1: 1.0, 2: 1.0}),
        ),
        Case(
            "late",
            "checkpoint {field}",
            ["train", c],
            base_config(
                w, fit__callbacks=[{"type": "ModelCheckpoint", "filepath": f"{w}/m-{{nope}}.npz"}]
            ),
            mentions="nope",
        ),
        Case(
            "late",
            "checkpoint format spec",
            ["train", c],
            base_config(
                w,
                fit__callbacks=[{"type": "ModelCheckpoint", "filepath": f"{w}/m-{{epoch:zz}}.npz"}],
            ),
        ),
        Case(
            "late",
            "checkpoint bad brace",
            ["train", c],
            base_config(
                w, fit__callbacks=[{"type": "ModelCheckpoint", "filepath": f"{w}/m-{{epoch.npz"}]
            ),
        ),
        Case(
            "late",
            "initial_value_threshold abc",
            ["train", c],
            base_config(
                w,
                fit__callbacks=[
                    {
                        "type": "ModelCheckpoint",
                        "filepath": f"{w}/m.npz",
                        "initial_value_threshold": "abc",
                    }
                ],
            ),
        ),
        Case(
            "late",
            "test_path features",
            ["train", c],
            base_config(w, data__test_path=f"{w}/wide.npz"),
            mentions="wide.npz",
        ),
        Case(
            "late",
            "validation_path features",
            ["train", c],
            base_config(w, data__validation_path=f"{w}/wide.npz"),
            mentions="wide.npz",
        ),
        Case(
            "late",
            "early stopping patience -1",
            ["train", c],
            base_config(w, fit__callbacks=[{"type": "EarlyStopping", "patience": -1}]),
        ),
        Case(
            "late",
            "csvlogger missing folder",
            ["train", c],
            base_config(w, fit__callbacks=[{"type": "CSVLogger", "filename": f"{w}/nope/log.csv"}]),
            mentions="nope",
        ),
        # --- broken files we read ------------------------------------------------------------
        *[
            Case(
                "files",
                f"weights {kind}",
                ["evaluate", "{broken}"],
                None,
                {"broken": _broken_run(kind)},
                mentions="broken-",
            )
            for kind in (
                "truncated",
                "bitflip",
                "object-member",
                "zero-d",
                "deflate64",
                "model-json-list",
                "model-json-keys",
                "no-weights",
            )
        ],
        *[
            Case(
                "files",
                f"checkpoint {kind}",
                ["train", c, "--resume", "{broken}"],
                own,
                {"broken": _broken_checkpoint(kind)},
                mentions="ckpt-",
            )
            for kind in (
                "truncated",
                "bitflip",
                "meta-missing",
                "meta-types",
                "params-shape",
                "nonfinite",
            )
        ],
        # --- paths -----------------------------------------------------------------------------
        Case(
            "paths",
            "--output is a file",
            ["train", c, "--output", f"{w}/data.npz"],
            base_config(w),
            mentions="data.npz",
        ),
        Case(
            "paths",
            "predict --output missing folder",
            ["predict", f"{w}/good-run", "--input", f"{w}/x.npy", "--output", f"{w}/nope/p.csv"],
            None,
            mentions="nope",
        ),
        Case("paths", "evaluate missing run", ["evaluate", f"{w}/no-such-run"], None),
        Case("paths", "config is a folder", ["train", w], None),
        Case(
            "paths",
            "tilde output dir",
            ["train", c, "--quiet"],
            base_config(w, output__dir="~/gpunet-adversarial-runs"),
            expect="accepted",
        ),
        Case(
            "paths",
            "modelcheckpoint new folder",
            ["train", c, "--quiet"],
            base_config(
                w, fit__callbacks=[{"type": "ModelCheckpoint", "filepath": f"{w}/new/m.npz"}]
            ),
            expect="accepted",
        ),
        Case(
            "paths",
            "non-UTF-8 config name",
            ["train", "{odd}", "--quiet"],
            None,
            {"odd": lambda w: _odd_config(w)},
            expect="accepted",
        ),
        # --- text data ---------------------------------------------------------------------------
        Case(
            "csv",
            "latin-1 csv",
            ["train", c],
            base_config(w, data={"path": f"{w}/latin.csv", "label_column": "label"}),
            {"latin.csv": "f\u00e9ature,label\n1,0\n2,1\n".encode("latin-1")},
            mentions="latin.csv",
        ),
        Case(
            "csv",
            "bom header-less csv",
            ["train", c, "--quiet"],
            base_config(w, data={"path": f"{w}/bom.csv", "label_column": 1}, model__1__units=2),
            {
                "bom.csv": b"\xef\xbb\xbf"
                + b"".join(f"{i % 7}.5,{i % 2}\n".encode() for i in range(40))
            },
            expect="accepted",
        ),
        # --- new user ----------------------------------------------------------------------------
        Case(
            "user",
            "resume with a different config",
            ["train", c, "--resume", f"{w}/good-run"],
            base_config(w, fit__epochs=9, model__0__units=9),
            mentions="model[0].units",
        ),
        Case(
            "user",
            "resume with its own config",
            ["train", c, "--resume", f"{w}/good-run"],
            own,
            expect="accepted",
        ),
        Case(
            "user",
            "summary --backend numpy",
            ["summary", c, "--backend", "numpy"],
            base_config(w),
            expect="accepted",
        ),
        Case("user", "API callbacks=5", ["api-callbacks"], None),
        Case("user", "API numpy epochs", ["api-numpy-epochs"], None, expect="accepted"),
        Case(
            "user",
            "evaluate unfinished run",
            ["evaluate", "{broken}"],
            None,
            {"broken": _broken_run("no-weights")},
            mentions="resume",
        ),
    ]


def _odd_config(w: str) -> str:
    """The base config under a file name that is not UTF-8 (b'c\\xff.yaml')."""
    path = os.fsencode(w) + b"/c\xff.yaml"
    with open(path, "w") as f:
        yaml.safe_dump(base_config(w), f)
    return os.fsdecode(path)


def _npz_huge_member(w: str) -> str:
    """A .npz whose x member declares 4e11 float32 elements in 128 bytes."""
    path = f"{w}/huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", _huge_npy_header())
        z.writestr("y.npy", _huge_npy_header())
    return path


def _mnist_bomb(w: str) -> str:
    folder = f"{w}/bomb"
    os.makedirs(folder, exist_ok=True)
    bomb = _gzip_bomb()
    for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        open(f"{folder}/{name}", "wb").write(bomb)
    labels = gzip.compress(struct.pack(">II", 0x00000801, 1_000_000) + bytes(1_000_000))
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        open(f"{folder}/{name}", "wb").write(labels)
    return folder


def _write_config(path: str, config) -> None:
    if isinstance(config, str):
        text = config
    else:
        text = yaml.safe_dump(config, sort_keys=False)
        text = re.sub(r"'@([^']*)'", r"\1", text)  # '@1e-3' -> 1e-3, as a user writes it
    with open(path, "w") as f:
        f.write(text)


def run_case(case: Case, w: str) -> tuple[bool, str]:
    case_dir = tempfile.mkdtemp(dir=w, prefix="case-")
    made = {}
    for name, content in case.files.items():
        if callable(content):
            made[name] = content(w)
        else:
            with open(f"{w}/{name}", "wb") as f:
                f.write(content)
    if case.config is not None:
        _write_config(f"{w}/c.yaml", case.config)
    runs_before = set(os.listdir(f"{w}/runs")) if os.path.isdir(f"{w}/runs") else set()
    argv = [a.format(w=w, **made) if a.startswith("{") else a for a in case.argv]
    try:
        done = subprocess.run(
            _gpunet(*argv),
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT,
            cwd=case_dir,
        )
    except subprocess.TimeoutExpired:
        return False, f"hang (> {TIMEOUT} s)"
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)
    err = done.stderr.strip()
    lines = err.splitlines()
    runs_after = set(os.listdir(f"{w}/runs")) if os.path.isdir(f"{w}/runs") else set()
    left = runs_after - runs_before
    if case.expect == "accepted":
        if done.returncode == 0:
            return True, "exit 0"
        return False, f"exit {done.returncode}: {_short(err)}"
    if "Traceback" in err:
        return False, f"traceback: {_short(lines[-1] if lines else '')}"
    if done.returncode != 2:
        return False, f"exit {done.returncode}: {_short(err)}"
    if len(lines) != 1:
        return False, f"{len(lines)} lines: {_short(err)}"
    if len(err) > 400:
        return False, f"a line of {len(err)} characters"
    if case.mentions and case.mentions not in err:
        return False, f"does not name {case.mentions!r}: {_short(err)}"
    if left:
        for name in left:
            shutil.rmtree(f"{w}/runs/{name}", ignore_errors=True)
        return False, f"left a partial run directory: {_short(err)}"
    return True, _short(err)


def _short(text: str, limit: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(groups: list[str]) -> int:
    w = tempfile.mkdtemp(prefix="gpunet-adversarial-")
    try:
        _data(w)
        os.rename(_finished_run(w), f"{w}/good-run")
        selected = [case for case in cases(w) if not groups or case.group in groups]
        counts: dict[str, list[int]] = {}
        for case in selected:
            ok, what = run_case(case, w)
            tally = counts.setdefault(case.group, [0, 0])
            tally[0 if ok else 1] += 1
            print(f"{'ok  ' if ok else 'FAIL'} {case.group:6} {case.name:34} {what}", flush=True)
        print()
        for group, (good, bad) in counts.items():
            print(f"{group:6} {good:3} held, {bad:3} escaped")
        total_bad = sum(bad for _, bad in counts.values())
        print(f"all    {len(selected) - total_bad:3} held, {total_bad:3} escaped")
        return 1 if total_bad else 0
    finally:
        shutil.rmtree(w, ignore_errors=True)
        shutil.rmtree(os.path.expanduser("~/gpunet-adversarial-runs"), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
