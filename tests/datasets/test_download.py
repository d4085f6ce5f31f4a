"""The download path end to end against a local HTTP server on 127.0.0.1."""

import dataclasses
import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading

import numpy as np
import pytest

from gpunet.datasets import imagesets, locate
from gpunet.datasets.idx import DataError

RS = np.random.default_rng(0)
ARRAYS = {
    "train-images-idx3-ubyte.gz": RS.integers(0, 256, (12, 28, 28)).astype(np.uint8),
    "train-labels-idx1-ubyte.gz": RS.integers(0, 10, 12).astype(np.uint8),
    "t10k-images-idx3-ubyte.gz": RS.integers(0, 256, (4, 28, 28)).astype(np.uint8),
    "t10k-labels-idx1-ubyte.gz": RS.integers(0, 10, 4).astype(np.uint8),
}


def _idx_gz(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return gzip.compress(header + array.tobytes(), mtime=0)


FILES = {name: _idx_gz(array) for name, array in ARRAYS.items()}


class Handler(http.server.BaseHTTPRequestHandler):
    """/good/F serves F; /corrupt/F serves F with one byte changed; /drop/F closes mid-file."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        _, mode, name = self.path.split("/", 2)
        body = FILES.get(name)
        if body is None:
            self.send_error(404)
            return
        if mode == "corrupt":
            body = body[:-5] + bytes([body[-5] ^ 0xFF]) + body[-4:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "drop" else body)
        if mode == "drop":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUNET_DATA", raising=False)
    monkeypatch.delenv("GPUNET_MIRROR", raising=False)
    return tmp_path / "cache" / "gpunet" / "tiny"


def _source(*mirrors):
    return locate.Source(
        name="tiny",
        layouts=(tuple(ARRAYS),),
        sha256={name: hashlib.sha256(body).hexdigest() for name, body in FILES.items()},
        mirrors=tuple(mirrors),
        system_dirs=(),
        hint="test hint",
    )


def _cached_files(cache):
    return sorted(os.listdir(cache)) if cache.exists() else []


def test_good_download_is_verified_and_cached(server, cache):
    (x, y), (xt, yt) = imagesets.load(_source(f"{server}/good/"), show_progress=False)
    np.testing.assert_array_equal(x, ARRAYS["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(yt, ARRAYS["t10k-labels-idx1-ubyte.gz"])
    assert _cached_files(cache) == sorted(ARRAYS)  # no .part left behind
    # Second load reads the cache: no server needed.
    imagesets.load(_source("http://127.0.0.1:9/none/"), show_progress=False)


def test_checksum_mismatch_is_refused_and_nothing_cached(server, cache):
    with pytest.raises(DataError, match="checksum mismatch") as info:
        imagesets.load(_source(f"{server}/corrupt/"), show_progress=False)
    assert "tiny: not found locally and the download failed" in str(info.value)
    assert "test hint" in str(info.value)
    assert _cached_files(cache) == []


def test_connection_dropped_mid_file_caches_nothing(server, cache):
    with pytest.raises(DataError, match="could not download train-images"):
        imagesets.load(_source(f"{server}/drop/"), show_progress=False)
    assert _cached_files(cache) == []


def test_no_server_gives_a_clear_error(cache):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=rf"127.0.0.1:{port}.*refused") as info:
        imagesets.load(_source(f"http://127.0.0.1:{port}/"), show_progress=False)
    message = str(info.value)
    assert "Looked in:" in message and str(cache) in message
    assert _cached_files(cache) == []


def test_falls_back_to_the_next_mirror(server, cache):
    imagesets.load(_source(f"{server}/corrupt/", f"{server}/good/"), show_progress=False)
    assert _cached_files(cache) == sorted(ARRAYS)


def test_gpunet_mirror_overrides_the_list(server, cache, monkeypatch):
    monkeypatch.setenv("GPUNET_MIRROR", f"{server}/good")
    imagesets.load(_source("http://127.0.0.1:9/unused/"), show_progress=False)
    assert _cached_files(cache) == sorted(ARRAYS)


def test_a_corrupt_cached_file_is_removed_but_user_files_are_kept(server, cache, tmp_path):
    imagesets.load(_source(f"{server}/good/"), show_progress=False)
    (cache / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05")
    with pytest.raises(DataError, match="removed from the cache"):
        imagesets.load(_source(f"{server}/good/"), show_progress=False)
    assert "train-labels-idx1-ubyte.gz" not in _cached_files(cache)
    # A user's own folder with the same bad file: the error names it; the file stays.
    user = tmp_path / "mine"
    user.mkdir()
    for name, body in FILES.items():
        (user / name).write_bytes(body)
    (user / "train-labels-idx1-ubyte.gz").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05")
    with pytest.raises(DataError, match="holds 0 data bytes") as info:
        imagesets.load(_source(f"{server}/good/"), path=str(user), show_progress=False)
    assert "removed" not in str(info.value)
    assert (user / "train-labels-idx1-ubyte.gz").exists()


def test_npz_with_pickled_objects_is_refused(tmp_path, cache):
    folder = tmp_path / "npz"
    folder.mkdir()
    objects = np.array([{"a": 1}], dtype=object)
    np.savez(folder / "data.npz", x_train=objects, y_train=objects, x_test=objects, y_test=objects)
    source = dataclasses.replace(_source(), layouts=(("data.npz",),))
    with pytest.raises(DataError, match="not a readable .npz archive"):
        imagesets.load(source, path=str(folder), allow_download=False)


def test_npz_round_trip(tmp_path, cache):
    folder = tmp_path / "npz"
    folder.mkdir()
    arrays = list(ARRAYS.values())
    np.savez(
        folder / "data.npz",
        x_train=arrays[0],
        y_train=arrays[1],
        x_test=arrays[2],
        y_test=arrays[3],
    )
    source = dataclasses.replace(_source(), layouts=(("data.npz",),))
    (x, y), _ = imagesets.load(source, path=str(folder), allow_download=False)
    np.testing.assert_array_equal(x, arrays[0])


def test_label_count_mismatch_names_both_files(tmp_path, cache):
    folder = tmp_path / "mismatch"
    folder.mkdir()
    for name, body in FILES.items():
        (folder / name).write_bytes(body)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(_idx_gz(np.zeros(5, dtype=np.uint8)))
    with pytest.raises(DataError, match="holds 5 labels for 12 images"):
        imagesets.load(_source(), path=str(folder), allow_download=False)


def test_labels_out_of_range(tmp_path, cache):
    folder = tmp_path / "range"
    folder.mkdir()
    for name, body in FILES.items():
        (folder / name).write_bytes(body)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(_idx_gz(np.full(4, 12, dtype=np.uint8)))
    with pytest.raises(DataError, match=r"labels must lie in \[0, 10\), found values from 12"):
        imagesets.load(_source(), path=str(folder), allow_download=False)
