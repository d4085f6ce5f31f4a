import gzip
import struct

import numpy as np
import pytest

from gpunet.datasets.idx import DataError, read_idx


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28)).astype(np.uint8)
    data = _idx_bytes(images)
    path = tmp_path / ("images.gz" if compress else "images")
    path.write_bytes(gzip.compress(data) if compress else data)
    out = read_idx(str(path))
    np.testing.assert_array_equal(out, images)
    assert out.dtype == np.uint8 and out.flags.writeable


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated header"),
        (b"PK\x03\x04" + b"\x00" * 20, "wrong magic number 504b0304"),
        (_idx_bytes(np.zeros((4, 2, 2)))[:-3], "holds 13 data bytes.*declares 16"),
        (_idx_bytes(np.zeros((4, 2, 2))) + b"\x00", "holds more than 16 data bytes"),
        (
            struct.pack(">BBBBIII", 0, 0, 0x08, 3, 10**6, 10**6, 10**3),
            r"declares 1,000,000,000,000,000 data bytes, more than this machine's",
        ),
        (gzip.compress(_idx_bytes(np.zeros((4, 2, 2))))[:-6], "corrupt or truncated gzip"),
    ],
)
def test_corrupt_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path}: .*{message}"):
        read_idx(str(path))


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_idx(str(tmp_path))


def test_a_gzip_bomb_is_refused_without_being_inflated(tmp_path, monkeypatch):
    import zlib

    # 16 declared bytes, then 64 MiB of zeros compressed to ~64 KiB
    stream = zlib.compressobj(wbits=31)
    body = stream.compress(_idx_bytes(np.zeros((4, 2, 2))))
    chunk = bytes(1 << 20)
    body += b"".join(stream.compress(chunk) for _ in range(64)) + stream.flush()
    path = tmp_path / "bomb.gz"
    path.write_bytes(body)
    inflated = []
    real_read = gzip.GzipFile.read
    monkeypatch.setattr(
        gzip.GzipFile, "read", lambda self, n=-1: inflated.append(n) or real_read(self, n)
    )
    with pytest.raises(DataError, match="holds more than 16 data bytes"):
        read_idx(str(path))
    assert -1 not in inflated and sum(inflated) <= 4 + 12 + 17  # header, dims, data + 1
