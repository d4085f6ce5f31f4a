"""User data sets: `.npz` (named arrays), `.npy` pairs, and `.csv` with a label column.

Every fault names the file (and, for CSV, the line and column) and what was expected.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
import zipfile

import numpy as np

from gpunet.datasets.idx import DataError

FORMATS = (".npz", ".npy", ".csv")


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory; expected a {'/'.join(FORMATS)} file.")
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file.")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: the file is empty.")


def _check_declared_size(f, held: int, where: str) -> None:
    """Refuse a .npy header (at `f`'s position) that declares more data than the `held` bytes
    after it, before anything is allocated for it."""
    start = f.tell()
    version = np.lib.format.read_magic(f)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
        version, np.lib.format.read_array_header_2_0
    )
    shape, _, dtype = read_header(f)
    held -= f.tell() - start
    declared = math.prod(shape) * dtype.itemsize
    if declared > held:
        raise DataError(
            f"{where}: the header declares shape {shape} of {dtype} ({declared:,} bytes), but "
            f"the file holds {held:,}; it is truncated or not what it says."
        )


def _check_npy_size(path: str) -> None:
    with open(path, "rb") as f:
        _check_declared_size(f, os.path.getsize(path), path)


def _load_npy(path: str) -> np.ndarray:
    _check_file(path)
    try:
        _check_npy_size(path)
        return np.load(path, allow_pickle=False)
    except DataError:
        raise
    except (ValueError, OSError) as exc:
        raise DataError(
            f"{path}: not a readable .npy array without pickled objects ({exc})."
        ) from None


def _load_npz(path: str, x_key: str, y_key: str):
    _check_file(path)
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            missing = [k for k in (x_key, y_key) if k not in archive.files]
            if missing:
                raise DataError(
                    f"{path}: no array named {missing[0]!r}; it holds "
                    f"{', '.join(archive.files) or 'nothing'}."
                )
            for key in (x_key, y_key):
                info = archive.zip.getinfo(f"{key}.npy")
                with archive.zip.open(info) as member:
                    _check_declared_size(member, info.file_size, f"{path}[{key}]")
            x, y = archive[x_key], archive[y_key]
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise DataError(
            f"{path}: not a readable .npz archive without pickled objects ({exc})."
        ) from None
    for key, value in ((x_key, x), (y_key, y)):
        if not isinstance(value, np.ndarray):  # NumPy hands over a non-.npy member as bytes
            raise DataError(f"{path}: member {key!r} is not a .npy array.")
    return x, y


def _text_encoding(encoding: str) -> str:
    """UTF-8 reads past a byte-order mark (some editors write one); other names as given."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _decode_error(path: str, exc: UnicodeDecodeError, encoding: str) -> DataError:
    return DataError(
        f"{path}: not {encoding} text (byte 0x{exc.object[exc.start]:02x} at offset "
        f"{exc.start}); give the file's encoding (data.encoding in a config, e.g. latin-1)."
    )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _first_row(path: str, encoding: str) -> list[str]:
    with open(path, newline="", encoding=encoding) as f:
        for row in csv.reader(f):
            if row:
                return row
    raise DataError(f"{path}: the file holds no rows.")


def _label_index(path: str, label_column, header: list[str] | None, width: int) -> int:
    if isinstance(label_column, str):
        if header is None:
            raise DataError(
                f"{path}: label column {label_column!r} given by name, but the file "
                "has no header row; give its index instead."
            )
        if label_column not in header:
            raise DataError(
                f"{path}: no column named {label_column!r}; columns are {', '.join(header)}."
            )
        return header.index(label_column)
    if isinstance(label_column, bool) or not isinstance(label_column, int):
        raise DataError(
            f"{path}: label_column must be a column name or index, received {label_column!r}."
        )
    if not -width <= label_column < width:
        raise DataError(f"{path}: label column {label_column} is outside the {width} columns.")
    return label_column % width


def _find_bad_cell(path: str, header: list[str] | None, width: int, encoding: str) -> DataError:
    """The slow, precise pass: the first line whose cells don't parse, named exactly."""
    with open(path, newline="", encoding=encoding) as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or (header is not None and line == 1):
                continue
            if len(row) != width:
                return DataError(f"{path}:{line}: {len(row)} cells, expected {width}.")
            for j, cell in enumerate(row):
                if not _is_number(cell):
                    name = header[j] if header else str(j)
                    return DataError(f"{path}:{line}: column {name!r}: {cell!r} is not a number.")
    return DataError(f"{path}: could not be parsed as CSV numbers.")


def _load_csv(path: str, label_column, encoding: str):
    _check_file(path)
    first = _first_row(path, encoding)
    header = None if all(_is_number(cell) for cell in first) else first
    width = len(first)
    label_index = _label_index(path, label_column, header, width)
    try:  # NumPy's C parser first; the precise pass only explains a failure
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": see below
            values = np.loadtxt(
                path,
                delimiter=",",
                skiprows=1 if header else 0,
                ndmin=2,
                dtype=np.float64,
                encoding=encoding,
            )
    except ValueError:
        raise _find_bad_cell(path, header, width, encoding) from None
    if values.shape[0] == 0:
        raise DataError(f"{path}: holds a header but no data rows.")
    x = np.delete(values, label_index, axis=1).astype(np.float32)
    return x, values[:, label_index]


def _check_arrays(path: str, x, y, num_classes: int | None):
    if len(x) != len(y):
        raise DataError(f"{path}: {len(x)} samples but {len(y)} labels; the counts must match.")
    if len(x) == 0:
        raise DataError(f"{path}: holds no samples.")
    for name, array in (("features", x), ("labels", y)):
        if not np.issubdtype(array.dtype, np.number):
            raise DataError(f"{path}: {name} must be numeric, found dtype {array.dtype}.")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            row = int(np.argwhere(~np.isfinite(array))[0, 0])
            raise DataError(f"{path}: {name} contain NaN or inf (first at sample {row}).")
    if num_classes is not None and y.ndim == 1:
        if not np.all(np.mod(y, 1) == 0) or y.min() < 0 or y.max() >= num_classes:
            raise DataError(
                f"{path}: labels must be integers in [0, {num_classes}), found values "
                f"from {y.min()} to {y.max()}."
            )
    return x, y


def load(
    path: str,
    *,
    label_column="label",
    labels_path: str | None = None,
    x_key: str = "x",
    y_key: str = "y",
    num_classes: int | None = None,
    encoding: str = "utf-8",
):
    """(x, y) from a user file: `.npz` with arrays `x_key`/`y_key`; `.npy` features with labels in
    `labels_path` (`.npy`); `.csv` with the label in `label_column` (a header name, or an index
    when the file has no header), as `encoding` text."""
    _check_file(path)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npz":
        x, y = _load_npz(path, x_key, y_key)
    elif extension == ".npy":
        if labels_path is None:
            raise DataError(f"{path}: a .npy features file needs its labels file (labels_path).")
        x, y = _load_npy(path), _load_npy(labels_path)
    elif extension == ".csv":
        try:
            x, y = _load_csv(path, label_column, _text_encoding(encoding))
        except UnicodeDecodeError as exc:
            raise _decode_error(path, exc, encoding) from None
        except LookupError:
            raise DataError(f"{path}: unknown text encoding {encoding!r}.") from None
    else:
        raise DataError(
            f"{path}: unsupported format {extension or '(none)'}; expected one of "
            f"{', '.join(FORMATS)}."
        )
    return _check_arrays(path, x, y, num_classes)


def standardize(x_train: np.ndarray, *others: np.ndarray):
    """Scale features to zero mean and unit variance, with the mean and std of the training part
    only (constant features keep std 1). Returns (x_train, *others, mean, std), all float32."""
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0
    mean, std = mean.astype(np.float32), std.astype(np.float32)
    scaled = [((np.asarray(x, dtype=np.float32) - mean) / std) for x in (x_train, *others)]
    return (*scaled, mean, std)


def load_features(path: str, encoding: str = "utf-8") -> np.ndarray:
    """Inputs without labels, for predict: a `.npy` array, or a `.csv` whose every column is a
    feature (a header row is skipped)."""
    _check_file(path)
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npy":
        x = _load_npy(path)
    elif extension == ".csv":
        text = _text_encoding(encoding)
        try:
            first = _first_row(path, text)
            header = None if all(_is_number(cell) for cell in first) else first
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    x = np.loadtxt(
                        path, delimiter=",", skiprows=1 if header else 0, ndmin=2, encoding=text
                    )
            except ValueError:
                raise _find_bad_cell(path, header, len(first), text) from None
        except UnicodeDecodeError as exc:
            raise _decode_error(path, exc, encoding) from None
    else:
        raise DataError(
            f"{path}: unsupported input format {extension or '(none)'}; expected .npy or .csv."
        )
    if len(x) == 0:
        raise DataError(f"{path}: holds no samples.")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{path}: contains NaN or inf.")
    return x
