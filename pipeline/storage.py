"""Local folders and object storage (``s3://``) behind one small path-like value.

Only what the cube and the products need: join, exists, read/write small text
files, remove a tree, upload/download a file. Also the one way files and folders
appear here atomically (:func:`atomic_write`, :func:`atomic_dir`, :func:`staging`
with :func:`publish`) and the checks of an output place. Remote access goes through
fsspec (s3fs for ``s3://``); credentials come from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` or
``S3_ENDPOINT_URL`` for S3-compatible services such as CreoDIAS object storage).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from pipeline.errors import InputError

log = logging.getLogger(__name__)


def is_remote(url: str | Path) -> bool:
    """True for ``scheme://`` URLs other than ``file://``."""
    s = str(url)
    return "://" in s and not s.startswith("file://")


def storage_options(url: str | Path) -> dict[str, Any] | None:
    """fsspec options for ``url`` (None for local paths)."""
    if not is_remote(url):
        return None
    opts: dict[str, Any] = {}
    if str(url).startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT_URL")
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
    return opts


@dataclass(frozen=True)
class Loc:
    """A local path or a remote URL, with the few file operations the pipeline needs.

    Attributes:
        url: local path (as text) or ``scheme://bucket/key`` URL.
    """

    url: str

    @classmethod
    def of(cls, where: str | Path | Loc) -> Loc:
        """Wrap a path, URL or Loc."""
        return where if isinstance(where, Loc) else cls(str(where).rstrip("/") or "/")

    @property
    def remote(self) -> bool:
        """True for object storage."""
        return is_remote(self.url)

    @property
    def name(self) -> str:
        """Last path component."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    @property
    def path(self) -> Path:
        """The local path (only for local locations)."""
        assert not self.remote, self.url
        return Path(self.url)

    @property
    def options(self) -> dict[str, Any] | None:
        """fsspec storage options (None when local)."""
        return storage_options(self.url)

    def _fs(self) -> Any:
        fs, _ = fsspec.core.url_to_fs(self.url, **(self.options or {}))
        return fs

    def __truediv__(self, part: str) -> Loc:
        return Loc(f"{self.url.rstrip('/')}/{part}")

    def with_suffix_name(self, suffix: str) -> Loc:
        """Sibling named ``<name><suffix>``."""
        return Loc(self.url.rstrip("/") + suffix)

    def exists(self) -> bool:
        """Whether a file or folder exists here."""
        if not self.remote:
            return Path(self.url).exists()
        return bool(self._fs().exists(self.url))

    def read_text(self) -> str:
        """Contents of a small text file."""
        if not self.remote:
            return Path(self.url).read_text()
        with fsspec.open(self.url, "rt", **(self.options or {})) as f:
            return str(f.read())

    def write_text(self, text: str) -> None:
        """Write a small text file so that it appears complete or not at all."""
        if not self.remote:
            p = Path(self.url)
            p.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(p) as tmp:
                tmp.write_text(text)
            return
        self._fs().pipe_file(self.url, text.encode())  # one PUT: atomic on object storage

    def mkdir(self) -> None:
        """Create the folder (object storage has none: no-op)."""
        if not self.remote:
            Path(self.url).mkdir(parents=True, exist_ok=True)

    def rmtree(self) -> None:
        """Remove a folder and everything under it, if present."""
        if not self.remote:
            shutil.rmtree(self.url, ignore_errors=True)
            return
        fs = self._fs()
        if fs.exists(self.url):
            fs.rm(self.url, recursive=True)

    def upload(self, local: Path) -> None:
        """Copy a local file or folder here."""
        if not self.remote:
            if local.is_dir():
                shutil.copytree(local, self.url, dirs_exist_ok=True)
            else:
                shutil.copyfile(local, self.url)
            return
        self._fs().put(str(local), self.url, recursive=local.is_dir())

    def download(self, local: Path) -> None:
        """Copy this file here to a local path."""
        local.parent.mkdir(parents=True, exist_ok=True)
        if not self.remote:
            shutil.copyfile(self.url, local)
            return
        self._fs().get(self.url, str(local))


@dataclass(frozen=True)
class OutputPlace:
    """Where a run, or one tile of it, writes.

    Attributes:
        local: folder of the products (with ``--out s3://...`` a local working folder).
        remote: the object-storage location of ``--out``, or None. The cube lives there
            (workers write to it directly, so any machine can resume) and the products
            are uploaded there.
    """

    local: Path
    remote: Loc | None = None

    def tile(self, rel: str) -> OutputPlace:
        """The place of a tile at ``rel`` below this one ("" = this place)."""
        if not rel:
            return self
        return OutputPlace(self.local / rel, None if self.remote is None else self.remote / rel)

    @property
    def cube(self) -> Loc:
        """The Zarr store."""
        return self.remote / "cube.zarr" if self.remote is not None else Loc.of(
            self.local / "cube.zarr"
        )


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` on success.

    The name keeps the suffix (writers that infer the format from it still work) and
    holds the process and thread, so concurrent writers never share a temporary file.
    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{threading.get_ident()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _replace(src: Path, target: Path, aside: Path) -> None:
    """Move ``src`` onto ``target``; a folder already there is renamed to ``aside`` first
    and removed once the new one is in place (``os.replace`` keeps no non-empty folder)."""
    old = None
    if src.is_dir() and target.exists():
        os.replace(target, aside)
        old = aside
    os.replace(src, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_dir(path: Path, replace: bool = True) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; renamed onto ``path`` on success.

    ``replace=False`` only takes the place of a missing or empty folder (OSError
    otherwise, e.g. when a concurrent writer finished first). The temporary folder is
    removed whatever happens.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-partial-", dir=path.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        if replace:
            _replace(tmp, path, tmp.with_name(tmp.name + "-old"))
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp.with_name(tmp.name + "-old"), ignore_errors=True)


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temporary folder inside ``out`` for files that :func:`publish` moves into ``out``;
    removed afterwards whatever happens."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(staged: Path, out: Path) -> list[Path]:
    """Move every staged file (or folder) into ``out`` atomically (same file system)."""
    moved = []
    for f in sorted(staged.iterdir()):
        _replace(f, out / f.name, staged / f".old-{f.name}")
        moved.append(out / f.name)
    return moved


def check_writable_dir(path: Path, option: str = "--out") -> None:
    """InputError unless ``path`` is (or can be created as) a writable folder."""
    p = path.absolute()
    if p.exists() and not p.is_dir():
        raise InputError(f"{option}: {path} exists and is not a folder; pass a folder path")
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{option}: cannot create {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{option}: cannot write to {path} (no write permission on {probe})")


#: Rough bytes per pixel and date of a run's outputs: the cube's float32 inputs (NDVI,
#: four backscatter series) and fill (mean, std) plus the products' stacks, uncompressed.
BYTES_PER_CELL = 48


def estimated_size(pixels: int, dates: int) -> int:
    """Rough size in bytes of what a run of ``pixels`` x ``dates`` writes (an upper bound:
    compression usually halves it)."""
    return pixels * dates * BYTES_PER_CELL


def check_disk_space(path: Path, pixels: int, dates: int) -> bool:
    """Warn (never fail) when the file system of ``path`` has less free space than the
    run's estimated size; True when it has enough."""
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    need = estimated_size(pixels, dates)
    if free >= need:
        return True
    log.warning("--out %s: %s free, the run may write up to about %s; free space or pass "
                "another --out if it fails", path, _size(free), _size(need))
    return False


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


#: Marker a run writes into the ``--out`` folder it creates or finds empty (it owns it).
OWNER_MARKER = ".s1s2-gapfill-out"
#: Lock file a run holds (OS lock) for its whole life; it names the holder.
LOCK_NAME = ".s1s2-gapfill.lock"
#: What the run that owns ``--out`` was asked (its signature); a rerun resumes only with it.
SIGNATURE_NAME = ".s1s2-gapfill-run"
#: Files of the run's own bookkeeping (a folder holding only these has no outputs).
_OWN_FILES = {LOCK_NAME, OWNER_MARKER, SIGNATURE_NAME}


def check_resume(path: Path, sig: Mapping[str, str], overwrite: bool = False) -> None:
    """InputError when ``path`` holds the outputs of a run asked something else.

    ``sig`` is the signature of this run (:func:`pipeline.request.run_signature`); the
    folder's is the one recorded by the run that made it. With ``overwrite`` the new
    run replaces the old one's outputs.
    """
    recorded = path / SIGNATURE_NAME
    if overwrite or not recorded.is_file():
        return
    try:
        old = json.loads(recorded.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    differs = [k for k in sig if not isinstance(old, dict) or old.get(k) != sig[k]]
    if not differs:
        return
    shown = "; ".join(
        f"{k} {old.get(k, '?')} there, {sig[k]} now" if k != "aoi" else "another AOI"
        for k in differs
    ) if isinstance(old, dict) else "unreadable record"
    raise InputError(f"--out {path} holds a run with other inputs ({shown}); pass a new --out, "
                     "or --overwrite to replace that run's outputs")


def check_out_owned(path: Path, overwrite: bool = False, inputs: tuple[Path, ...] = ()) -> None:
    """InputError unless a run may write into ``path`` (no file is touched).

    Never ``/`` or the home folder, never a folder that holds one of ``inputs``; a
    non-empty folder must carry the marker of an earlier run unless ``overwrite``.
    """
    p = path.absolute()
    if p.resolve() in {Path("/"), Path.home().resolve()}:
        raise InputError(f"--out {path} is {'/' if p.resolve() == Path('/') else 'the home folder'}"
                         "; pass a folder of its own, e.g. out/")
    for f in inputs:
        if f.exists() and f.resolve().is_relative_to(p.resolve()):
            raise InputError(f"--out {path} holds the input {f}; pass a folder of its own")
    owned = (p / OWNER_MARKER).exists() or (p / LOCK_NAME).exists()  # lock: a run claiming it
    if p.is_dir() and not owned and not overwrite:
        names = sorted(q.name for q in p.iterdir())
        if names:
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise InputError(f"--out {path} is not empty ({shown}) and no run of this pipeline "
                             "made it; pass an empty or new folder, or --overwrite to write there")


def _lock_holder(lock: Path, wait_s: float = 2.0) -> str:
    """Who holds ``lock``, as its holder wrote it (``pid N: command``).

    The holder writes that line just after taking the lock, so a run refused in between
    finds the file empty; it waits up to ``wait_s`` for the line before saying only
    "another process".
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            holder = lock.read_text().strip()
        except OSError:
            holder = ""
        if holder or time.monotonic() >= deadline:
            return holder or "another process"
        time.sleep(0.02)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the one found at ``path``."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (found.st_dev, found.st_ino)


@contextmanager
def claim_out(path: Path, sig: Mapping[str, str] | None = None,
              overwrite: bool = False) -> Iterator[None]:
    """Own and lock ``path`` for the life of a run.

    Creates the folder, writes the owner marker and holds an exclusive OS lock on the
    lock file (released by the OS when the process ends, so a dead run's lock is taken
    over). A second run into the same folder gets an InputError naming the holder.
    With the lock held, the run's signature ``sig`` is checked against the folder's
    (:func:`check_resume`) and recorded. If the run fails and the folder it created
    holds nothing but this bookkeeping, the folder is removed again; a run refused the
    lock removes nothing (two runs may both have found no folder and made it).
    """
    lock = path / LOCK_NAME
    while True:
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _lock_holder(lock)
            # refused: the folder is the holder's now, even where this run created it
            raise InputError(f"--out {path} is in use by another run ({holder}); wait for it "
                             "to end or pass another --out") from None
        if _same_file(fd, lock):
            break
        # a run that failed removed its empty folder, lock file included, between this
        # open and this lock: the lock taken is on a file nobody else can find; again
        os.close(fd)
    ok = False
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}\n".encode())
        marker = path / OWNER_MARKER
        if not marker.exists():
            with atomic_write(marker) as tmp:
                tmp.write_text("written by s1s2-gapfill: this folder holds a run's outputs\n")
        if sig is not None:
            check_resume(path, sig, overwrite)
            with atomic_write(path / SIGNATURE_NAME) as tmp:
                tmp.write_text(json.dumps(dict(sig), indent=1) + "\n")
        yield
        ok = True
    finally:
        if not ok and created and {q.name for q in path.iterdir()} <= _OWN_FILES:
            shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def check_remote_out(url: str) -> None:
    """InputError unless the object-storage location can be listed and written."""
    if not url.startswith("s3://"):
        raise InputError(f"--out: unsupported URL scheme in {url}; use a local folder or s3://")
    loc = Loc(url) / ".write-test"
    try:
        loc.write_text("ok")
        loc.rmtree()
    except Exception as exc:  # botocore/s3fs raise many types
        raise InputError(
            f"--out: cannot write to {url} ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "check the bucket and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_ENDPOINT_URL"
        ) from None


def upload_products(local: Path, remote: Loc) -> None:
    """Copy the products of ``local`` (not the cube, already remote) to ``remote``;
    run.json goes last, so its presence means the upload is complete."""
    names = sorted(
        p.name
        for p in local.iterdir()
        if p.name not in ("run.json", "cube.zarr", "cube.zarr.progress", "tiles", *_OWN_FILES)
        and not p.name.startswith(".staging-")
    )
    for name in names:
        (remote / name).upload(local / name)
    if (local / "run.json").exists():
        (remote / "run.json").upload(local / "run.json")
