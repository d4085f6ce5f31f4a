"""Where a data set's files come from, in order: an explicit folder, $GPUNET_DATA/<name>, the
user cache, the system data-set folders distributions install (Debian's dataset-fashion-mnist),
then a checked download from the mirrors into the cache."""

from __future__ import annotations

import os
from dataclasses import dataclass

from gpunet.datasets import download
from gpunet.datasets.idx import DataError


@dataclass(frozen=True)
class Source:
    """A data set's files: `layouts` are alternative file sets, the first one downloadable, with
    the published SHA-256 of each of its files in `sha256`."""

    name: str
    layouts: tuple[tuple[str, ...], ...]
    sha256: dict
    mirrors: tuple[str, ...]
    system_dirs: tuple[str, ...]
    hint: str


def cache_dir() -> str:
    """The user cache: $XDG_CACHE_HOME/gpunet, else ~/.cache/gpunet."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gpunet")


def source_cache(source: Source) -> str:
    return os.path.join(cache_dir(), source.name)


def candidate_dirs(source: Source, path: str | None) -> list[str]:
    """Folders that may hold the data set, in search order."""
    dirs = [] if path is None else [path]
    if os.environ.get("GPUNET_DATA"):
        dirs.append(os.path.join(os.environ["GPUNET_DATA"], source.name))
    dirs.append(source_cache(source))
    dirs.extend(source.system_dirs)
    return dirs


def find_local(source: Source, path: str | None) -> list[str] | None:
    """Paths of the first complete layout in the first folder holding one, else None."""
    if path is not None and not os.path.isdir(path):
        raise DataError(f"{path}: no such folder (given as the {source.name} data path).")
    for folder in candidate_dirs(source, path):
        for layout in source.layouts:
            if all(os.path.isfile(os.path.join(folder, f)) for f in layout):
                return [os.path.join(folder, f) for f in layout]
    return None


def locate(
    source: Source, path: str | None = None, allow_download: bool = True, show_progress: bool = True
) -> list[str]:
    """Paths of the data set's files, downloading the first layout into the cache if needed."""
    found = find_local(source, path)
    if found is not None:
        return found
    dirs = candidate_dirs(source, path)
    if not allow_download:
        raise DataError(
            f"{source.name}: not found. Looked in: {'; '.join(dirs)}.\nHint: {source.hint}"
        )
    bases = download.mirrors(list(source.mirrors))
    try:
        return [
            download.fetch(f, bases, source.sha256[f], source_cache(source), show_progress)
            for f in source.layouts[0]
        ]
    except DataError as exc:
        raise DataError(
            f"{source.name}: not found locally and the download failed. Looked in: "
            f"{'; '.join(dirs)}. Download: {exc}\nHint: {source.hint}"
        ) from None


def in_cache(path: str) -> bool:
    return os.path.abspath(path).startswith(os.path.abspath(cache_dir()) + os.sep)


def discard_if_cached(path: str, error: DataError) -> DataError:
    """A bad file in gpunet's own cache is removed, so the next run downloads a fresh copy;
    files anywhere else are the user's and are never touched."""
    if in_cache(path) and os.path.isfile(path):
        os.remove(path)
        return DataError(f"{error} It was removed from the cache; run again to download it anew.")
    return error
