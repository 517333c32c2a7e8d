"""Local folders and object storage (``s3://``) behind one small path-like value.

Only what the cube and the products need: join, exists, read/write small text
files, remove a tree, upload/download a file. Remote access goes through
fsspec (s3fs for ``s3://``); credentials come from the environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` or
``S3_ENDPOINT_URL`` for S3-compatible services such as CreoDIAS object storage).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec


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
            tmp = p.with_name(p.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, p)
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
