"""Checked downloads: stream to a temporary file beside the target, hash while writing, and rename
into place only when the SHA-256 matches. Nothing partial or unverified is ever left behind."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from gpunet.datasets.idx import DataError

CHUNK = 1 << 16
TIMEOUT_S = 30


def sha256_of(path: str) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def mirrors(default: list[str]) -> list[str]:
    """Base URLs to try: $GPUNET_MIRROR (comma-separated) when set, else the defaults."""
    override = os.environ.get("GPUNET_MIRROR", "").strip()
    if override:
        return [m.strip().rstrip("/") + "/" for m in override.split(",") if m.strip()]
    return default


def _stream(url: str, tmp, digest, progress: Progress | None) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        task = progress.add_task(url.rsplit("/", 1)[-1], total=total) if progress else None
        received = 0
        while True:
            block = response.read(CHUNK)
            if not block:
                break
            tmp.write(block)
            digest.update(block)
            received += len(block)
            if progress is not None:
                progress.update(task, advance=len(block))
        if total is not None and received != total:
            raise DataError(f"{url}: connection closed after {received} of {total} bytes.")


def fetch(filename: str, bases: list[str], sha256: str, dest_dir: str, show_progress=True) -> str:
    """Download `filename` from the first base URL that serves it with the expected SHA-256 into
    `dest_dir`; return its path. Raises DataError listing every URL tried and why it failed."""
    os.makedirs(dest_dir, exist_ok=True)
    target = os.path.join(dest_dir, filename)
    failures = []
    progress = None
    if show_progress:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=True,
        )
    for base in bases:
        url = base + filename
        fd, tmp_path = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=dest_dir)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as tmp:
                if progress is not None:
                    with progress:
                        _stream(url, tmp, digest, progress)
                else:
                    _stream(url, tmp, digest, None)
                tmp.flush()
                os.fsync(tmp.fileno())
            if digest.hexdigest() != sha256:
                raise DataError(
                    f"{url}: checksum mismatch (SHA-256 {digest.hexdigest()}, expected {sha256}); "
                    "the file was discarded."
                )
            os.replace(tmp_path, target)
            return target
        except (OSError, http.client.HTTPException, DataError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            failures.append(f"{url} ({reason})")
        finally:
            if os.path.exists(tmp_path):
                os.remove(tmp_path)
    raise DataError(f"could not download {filename}: tried {'; '.join(failures)}.")
