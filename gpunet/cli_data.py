"""`gpunet data info|fetch|verify`: where each data set is looked for, downloading it ahead of
time, and re-checking cached files against their SHA-256."""

from __future__ import annotations

import os

from gpunet.datasets import download, fashion_mnist, locate, mnist

SOURCES = {"mnist": mnist.SOURCE, "fashion_mnist": fashion_mnist.SOURCE}


def _names(name: str | None) -> list[str]:
    if name is None:
        return list(SOURCES)
    if name not in SOURCES:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(SOURCES)}.")
    return [name]


def cmd_data_info(args) -> int:
    for name in _names(args.name):
        source = SOURCES[name]
        found = locate.find_local(source, args.path)
        print(
            f"{name}: {'found in ' + os.path.dirname(found[0]) if found else 'not found locally'}"
        )
        for folder in locate.candidate_dirs(source, args.path):
            print(f"  {'exists ' if os.path.isdir(folder) else 'missing'}  {folder}")
        print(f"  download from: {', '.join(download.mirrors(list(source.mirrors)))}")
    return 0


def cmd_data_fetch(args) -> int:
    for name in _names(args.name):
        paths = locate.locate(SOURCES[name], args.path, allow_download=True)
        print(f"{name}: {os.path.dirname(paths[0])}")
    return 0


def cmd_data_verify(args) -> int:
    bad = 0
    for name in _names(args.name):
        source = SOURCES[name]
        folder = locate.source_cache(source)
        for filename, expected in source.sha256.items():
            path = os.path.join(folder, filename)
            if not os.path.isfile(path):
                continue
            if download.sha256_of(path) == expected:
                print(f"ok       {path}")
            else:
                os.remove(path)
                bad += 1
                print(f"REMOVED  {path} (SHA-256 mismatch; fetch it again)")
    return 1 if bad else 0
