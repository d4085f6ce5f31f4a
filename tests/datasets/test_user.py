import numpy as np
import pytest

from gpunet.datasets import user
from gpunet.datasets.idx import DataError


def test_npz_named_arrays(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, features=np.ones((3, 2)), target=np.array([0, 1, 1]))
    x, y = user.load(str(path), x_key="features", y_key="target")
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 1]
    with pytest.raises(DataError, match="no array named 'x'; it holds features, target"):
        user.load(str(path))


def test_npy_pair(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 3), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.arange(4))
    x, y = user.load(str(tmp_path / "x.npy"), labels_path=str(tmp_path / "y.npy"))
    assert x.shape == (4, 3) and len(y) == 4
    with pytest.raises(DataError, match="needs its labels file"):
        user.load(str(tmp_path / "x.npy"))


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.arange(1))
    with pytest.raises(DataError, match="without pickled objects"):
        user.load(str(tmp_path / "x.npy"), labels_path=str(tmp_path / "y.npy"))


def test_csv_with_header_and_label_by_name(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,label,b\n1,0,2\n3,1,4\n")
    x, y = user.load(str(path), label_column="label")
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    assert x.dtype == np.float32 and y.tolist() == [0, 1]


def test_csv_without_header_and_label_by_index(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("1,2,0\n3,4,1\n")
    x, y = user.load(str(path), label_column=-1)
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    with pytest.raises(DataError, match="given by name, but the file has no header"):
        user.load(str(path), label_column="label")


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        ("a,label\n1,0\nx,1\n", {}, r"d.csv:3: column 'a': 'x' is not a number"),
        ("a,label\n1,0\n2\n", {}, r"d.csv:3: 1 cells, expected 2"),
        ("a,label\n1,0\nnan,1\n", {}, "features contain NaN or inf"),
        ("a,label\n1,0\n2,7\n", {"num_classes": 3}, r"labels must be integers in \[0, 3\)"),
        ("a,label\n", {}, "no data rows"),
        ("a,b\n1,0\n", {}, "no column named 'label'; columns are a, b"),
        ("", {}, "the file is empty"),
    ],
)
def test_bad_csv_names_file_line_and_problem(tmp_path, content, kwargs, message):
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        user.load(str(path), **kwargs)


def test_directory_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        user.load(str(tmp_path))
    (tmp_path / "d.txt").write_text("1")
    with pytest.raises(DataError, match="unsupported format .txt"):
        user.load(str(tmp_path / "d.txt"))


def test_standardize_uses_training_statistics_only():
    x_train = np.array([[0.0, 5.0], [2.0, 5.0]], dtype=np.float32)
    x_val = np.array([[4.0, 5.0]], dtype=np.float32)
    train, val, mean, std = user.standardize(x_train, x_val)
    np.testing.assert_allclose(mean, [1.0, 5.0])
    np.testing.assert_allclose(std, [1.0, 1.0])  # constant column keeps std 1
    np.testing.assert_allclose(train, [[-1, 0], [1, 0]])
    np.testing.assert_allclose(val, [[3, 0]])
    assert train.dtype == val.dtype == np.float32
    # A spread that is not 1: dividing by the variance, or by the validation part's std,
    # would show here.
    x_train = np.array([[0.0], [4.0], [8.0]], dtype=np.float32)
    x_val = np.array([[12.0], [100.0]], dtype=np.float32)
    train, val, mean, std = user.standardize(x_train, x_val)
    spread = np.sqrt(32.0 / 3.0)  # population std of 0, 4, 8
    np.testing.assert_allclose(mean, [4.0])
    np.testing.assert_allclose(std, [spread], rtol=1e-6)
    np.testing.assert_allclose(train[:, 0], [-4 / spread, 0.0, 4 / spread], rtol=1e-6)
    np.testing.assert_allclose(val[:, 0], [8 / spread, 96 / spread], rtol=1e-6)


def test_a_missing_npz_member_is_named_in_full_and_a_non_array_member_refused(tmp_path):
    import zipfile

    path = tmp_path / "d.npz"
    np.savez(path, x=np.ones((2, 2)))
    with pytest.raises(DataError) as info:
        user.load(str(path))
    assert str(info.value) == f"{path}: no array named 'y'; it holds x."
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("y.npy", b"plain bytes, not an array")
    with pytest.raises(DataError, match=r"d\.npz: not a readable .npz archive .*magic string"):
        user.load(str(path))


def test_a_header_less_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf1.5,0\n2.5,1\n3.5,0\n")
    x, y = user.load(str(path), label_column=1)
    assert x.ravel().tolist() == [1.5, 2.5, 3.5] and y.tolist() == [0, 1, 0]
    assert user.load_features(str(path)).shape == (3, 2)


def test_a_csv_that_is_not_utf8_says_where_and_takes_an_encoding(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("f\u00e9ature,label\n1,0\n2,1\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        user.load(str(path))
    assert str(info.value) == (
        f"{path}: not utf-8 text (byte 0xe9 at offset 1); give the file's encoding "
        "(data.encoding in a config, e.g. latin-1)."
    )
    with pytest.raises(DataError, match="not utf-8 text"):
        user.load_features(str(path))
    x, y = user.load(str(path), encoding="latin-1")
    assert x.ravel().tolist() == [1.0, 2.0] and y.tolist() == [0, 1]
    with pytest.raises(DataError, match="unknown text encoding 'klingon'"):
        user.load(str(path), encoding="klingon")


def test_a_npy_header_declaring_more_than_the_file_holds_is_refused_before_allocating(tmp_path):
    import struct

    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (400000000000,), }"
    header += " " * (63 - len(header) % 64) + "\n"
    path = tmp_path / "x.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    np.save(tmp_path / "y.npy", np.arange(3))
    with pytest.raises(DataError) as info:
        user.load(str(path), labels_path=str(tmp_path / "y.npy"))
    assert str(info.value) == (
        f"{path}: the header declares shape (400000000000,) of float32 (1,600,000,000,000 "
        "bytes), but the file holds 0; it is truncated or not what it says."
    )
