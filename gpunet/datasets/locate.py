"""Where data-set files are looked for, in order: an explicit folder, $GPUNET_DATA, the user cache,
then the system data-set folders that distributions install (Debian's dataset-fashion-mnist)."""

from __future__ import annotations

import os

from gpunet.datasets.idx import DataError


def cache_dir() -> str:
    """The user cache: $XDG_CACHE_HOME/gpunet, else ~/.cache/gpunet."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gpunet")


def candidate_dirs(name: str, path: str | None, system_dirs: tuple[str, ...]) -> list[str]:
    """Folders that may hold data set `name`, in search order."""
    dirs = []
    if path is not None:
        dirs.append(path)
    if os.environ.get("GPUNET_DATA"):
        dirs.append(os.path.join(os.environ["GPUNET_DATA"], name))
    dirs.append(os.path.join(cache_dir(), name))
    dirs.extend(system_dirs)
    return dirs


def find_files(
    name: str, files: list[str], path: str | None, system_dirs: tuple[str, ...], hint: str
) -> list[str]:
    """Full paths of `files` from the first folder holding all of them, or a DataError that
    names every folder tried."""
    dirs = candidate_dirs(name, path, system_dirs)
    for folder in dirs:
        if all(os.path.isfile(os.path.join(folder, f)) for f in files):
            return [os.path.join(folder, f) for f in files]
    if path is not None and not os.path.isdir(path):
        raise DataError(f"{path}: no such folder (given as the {name} data path).")
    raise DataError(
        f"{name}: files {', '.join(files)} not found. Looked in: {'; '.join(dirs)}.\nHint: {hint}"
    )
