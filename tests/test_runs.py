"""Run-directory files (gpunet/runs.py): atomic writes that follow the umask and name the user's
path on failure, output folders as a shell user means them, `.npz` files read safely."""

import os
import stat
import zipfile

import numpy as np
import pytest

from gpunet import runs
from gpunet.datasets.idx import DataError


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_gives_the_permissions_the_umask_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        runs.atomic_write(str(tmp_path / "f.txt"), b"data")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f.txt").st_mode) == 0o666 & ~umask
    assert (tmp_path / "f.txt").read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["f.txt"]  # no temporary file left


def test_a_failed_atomic_write_names_the_users_path_and_leaves_nothing(tmp_path):
    missing = tmp_path / "nope" / "p.csv"
    with pytest.raises(OSError) as info:
        runs.atomic_write(str(missing), b"x")
    assert info.value.filename == str(missing) and info.value.strerror


def test_an_existing_file_is_replaced_whole(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"old")
    runs.atomic_write(str(path), b"new")
    assert path.read_bytes() == b"new"


def test_output_folders_expand_home_and_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path / "from-var"))
    made = runs.create_run_dir("~/runs", "cfg")
    assert made.startswith(str(tmp_path / "runs" / "cfg-"))
    made = runs.create_run_dir("$RUNS_ROOT", "cfg")
    assert made.startswith(str(tmp_path / "from-var" / "cfg-"))
    second = runs.create_run_dir("$RUNS_ROOT", "cfg")
    assert second != made and os.path.isdir(second)  # never reused


@pytest.mark.parametrize("base", ["", "   "])
def test_an_empty_output_folder_is_refused(base):
    with pytest.raises(DataError, match="^the output folder is empty"):
        runs.create_run_dir(base, "cfg")


def test_an_output_that_is_a_file_is_refused_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DataError) as info:
        runs.create_run_dir(str(blocker), "cfg")
    assert (
        str(info.value) == f"{blocker}: is a file; the output must be a folder for run directories."
    )
    with pytest.raises(DataError, match=r"/file/runs: cannot create the output folder \(Not a"):
        runs.create_run_dir(str(blocker / "runs"), "cfg")


def test_read_npz_refuses_damaged_files_in_one_line(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, a=np.arange(3.0))
    assert runs.read_npz(str(path), "weights")["a"].tolist() == [0.0, 1.0, 2.0]
    data = path.read_bytes()
    path.write_bytes(data[:40])
    with pytest.raises(DataError, match=r"w\.npz: damaged or not weights \(BadZipFile: "):
        runs.read_npz(str(path), "weights")
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(DataError, match=r"dir\.npz: is a folder; expected weights\."):
        runs.read_npz(str(tmp_path / "dir.npz"), "weights")
    with pytest.raises(DataError, match=r"missing\.npz: no such file\."):
        runs.read_npz(str(tmp_path / "missing.npz"), "weights")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.npy", b"not an array")
    with pytest.raises(DataError, match=r"w\.npz: member 'a' is not an array; not weights\.$"):
        runs.read_npz(str(path), "weights")


def test_a_full_disk_names_the_users_path_and_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "checkpoint.npz"
    path.write_bytes(b"the previous checkpoint")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        runs.atomic_write(str(path), b"new")
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(path))
    assert path.read_bytes() == b"the previous checkpoint"
    assert os.listdir(tmp_path) == ["checkpoint.npz"]  # the temporary file is gone
