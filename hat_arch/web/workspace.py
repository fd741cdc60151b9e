"""The server's temporary folder: uploads land in it, each request works in a job folder inside it, and all of it is
removed when the server stops. No path a client sends is opened unless it lies inside this folder."""
from __future__ import annotations

import re
import shutil
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

from hat_arch.atomic_write import write_atomic
from hat_arch.errors import HatError

# Characters kept in a file name that a client chose; the rest become '_'.
UNSAFE_NAME_CHARACTERS = re.compile(r'[^\w.\-]+')


class Workspace:
    """A temporary folder: ``uploads`` (the web toolkit's cache) and ``jobs/<id>`` (one per request)."""

    def __init__(self, max_upload_bytes: int, keep_seconds: float = 3600.0) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix='hat-sr-serve-')
        self.root = Path(self._directory.name).resolve()
        self.uploads = self.root / 'uploads'
        self.jobs = self.root / 'jobs'
        self.uploads.mkdir()
        self.jobs.mkdir()
        self.max_upload_bytes = max_upload_bytes
        self.keep_seconds = keep_seconds

    def cleanup(self) -> None:
        self._directory.cleanup()

    def new_job(self) -> Path:
        """A fresh job folder; job folders older than ``keep_seconds`` (their results long downloaded) go first."""
        now = time.time()
        for old in self.jobs.iterdir():
            if now - old.stat().st_mtime > self.keep_seconds:
                shutil.rmtree(old, ignore_errors=True)
        job = self.jobs / uuid.uuid4().hex
        job.mkdir()
        return job

    def discard(self, job: Path) -> None:
        """Remove ``job`` now (its run was cancelled: nobody will download its files)."""
        shutil.rmtree(job, ignore_errors=True)

    def accept_upload(self, upload: str | Path, job: Path) -> Path:
        """The uploaded file copied into ``job`` under a safe name, after the checks every upload passes: it lies
        in the upload folder (never a path the client chose) and is within the size limit. (Checks of the image
        itself, such as its size in pixels, are :func:`hat_arch.api.upscale_file`'s, shared with the command.)"""
        path = Path(upload).resolve()
        if not path.is_relative_to(self.uploads) or not path.is_file():
            raise HatError(f'{Path(upload).name}: not an uploaded file')
        size = path.stat().st_size
        if size > self.max_upload_bytes:
            raise HatError(f'{path.name}: {size / 2**20:.1f} MiB, over the upload limit of '
                           f'{self.max_upload_bytes / 2**20:.1f} MiB (hat-sr serve --max-upload-mb)')
        inputs = job / 'inputs'
        inputs.mkdir(exist_ok=True)
        target = unique_path(inputs / safe_name(path.name))
        with open(path, 'rb') as upload_file:
            write_atomic(target, lambda file: shutil.copyfileobj(upload_file, file), durable=False)
        return target


def safe_name(name: str) -> str:
    """A client's file name reduced to one plain path component."""
    name = UNSAFE_NAME_CHARACTERS.sub('_', Path(name).name).lstrip('.')
    return name or 'image'


def unique_path(path: Path) -> Path:
    """``path``, or ``stem-2.ext``, ``stem-3.ext``, ... if it exists."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f'{path.stem}-{number}{path.suffix}')
    return candidate


def zip_files(files: list[Path], target: Path) -> Path:
    """``files`` in one zip at ``target``, stored (the images are compressed already)."""
    def write(zip_file) -> None:
        with zipfile.ZipFile(zip_file, 'w', compression=zipfile.ZIP_STORED) as archive:
            for file in files:
                archive.write(file, file.name)

    write_atomic(target, write, durable=False)
    return target
