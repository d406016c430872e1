"""Local paths and remote ``tf.io.gfile`` URLs behind one small interface, so that data folders, run directories
(checkpoints, logs, models) and exports may live in a bucket (``gs://bucket/...`` on Google Cloud Storage), or in
TensorFlow's in-memory file system (``ram://...``, used by the tests).

A path is remote when it contains ``://``. Local paths keep their ``pathlib.Path`` behaviour (including atomic
renames); remote ones become a :class:`URLPath`, which offers the part of the ``Path`` interface the library uses and
reaches the data through ``tf.io.gfile``. Object stores have no atomic rename: a remote file is written as one object,
which Cloud Storage makes visible only once the upload is complete, and anything that needs several files to be
complete together (a checkpoint) says so with a write that comes last (see :mod:`sr_lib.training.checkpoint`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import posixpath
import shutil
import sys
import tempfile
from pathlib import Path, PurePosixPath


def is_url(path) -> bool:
    """Whether ``path`` is a remote URL (``gs://...``, ``ram://...``): any path holding ``://``."""
    return path is not None and "://" in str(path)


def _gfile():
    import tensorflow as tf  # Only remote paths need TensorFlow here.

    return tf.io.gfile


class URLPath:
    """A ``pathlib``-like handle on a ``tf.io.gfile`` URL: ``/``, ``name``, ``parent``, ``exists()``, ``read_text()``...

    It deliberately has no ``__fspath__``: handing it to ``open()`` or ``os`` functions fails loudly instead of
    writing to a local folder named ``gs:``.
    """

    def __init__(self, url):
        scheme, sep, rest = str(url).partition("://")
        if not sep or not scheme or not rest.strip("/"):
            raise ValueError(f"not a URL with a scheme and a path: {url!r}")
        while "//" in rest:
            rest = rest.replace("//", "/")
        self._scheme, self._rest = scheme, rest.rstrip("/")

    def __str__(self):
        return f"{self._scheme}://{self._rest}"

    def __repr__(self):
        return f"URLPath({str(self)!r})"

    def __eq__(self, other):
        return isinstance(other, URLPath) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __truediv__(self, other):
        return URLPath(f"{self}/{str(other).lstrip('/')}")

    @property
    def name(self) -> str:
        return posixpath.basename(self._rest)

    @property
    def parent(self) -> "URLPath":
        head = posixpath.dirname(self._rest)
        return URLPath(f"{self._scheme}://{head}") if head else self

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    def with_name(self, name) -> "URLPath":
        return self.parent / name

    def exists(self) -> bool:
        return _gfile().exists(str(self))

    def is_dir(self) -> bool:
        return _gfile().isdir(str(self))

    def is_file(self) -> bool:
        return self.exists() and not self.is_dir()

    def mkdir(self, parents=False, exist_ok=False):
        _gfile().makedirs(str(self))

    def iterdir(self):
        for child in sorted(_gfile().listdir(str(self))):
            yield self / child.rstrip("/")  # Cloud Storage lists sub-folders as "name/".

    def glob(self, pattern) -> list:
        return [URLPath(path) for path in sorted(_gfile().glob(str(self / pattern)))]

    def read_bytes(self) -> bytes:
        with _gfile().GFile(str(self), "rb") as handle:
            return handle.read()

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes):
        _before_overwrite(self)
        with _gfile().GFile(str(self), "wb") as handle:
            handle.write(data)

    def write_text(self, text: str):
        self.write_bytes(text.encode("utf-8"))


def _before_overwrite(path: URLPath):
    """Makes the parent folder (``ram://`` lists only folders made explicitly; on ``gs://`` it is a marker object).
    TensorFlow's in-memory file system also appends when an existing file is opened for writing or copied over, so
    there the file is removed first. Object stores replace an object whole on write: nothing is removed, and a reader
    never sees the file missing."""
    _gfile().makedirs(str(path.parent))
    if str(path).startswith("ram://") and path.exists():
        _gfile().remove(str(path))


def as_path(path):
    """``path`` as a ``URLPath`` when it is a URL, else as a ``pathlib.Path``."""
    if isinstance(path, (URLPath, Path)):
        return path
    return URLPath(path) if is_url(path) else Path(os.fspath(path))


def write_text(path, text: str):
    """Writes a small text file whole (:func:`write_bytes`)."""
    write_bytes(path, text.encode("utf-8"))


def upload(local_file, destination):
    """Copies a finished local file to ``destination`` whole (remote: one object; local: a temporary name, then a
    rename), so a reader never sees it half-written."""
    destination = as_path(destination)
    if isinstance(destination, URLPath):
        _before_overwrite(destination)
        _gfile().copy(os.fspath(local_file), str(destination), overwrite=True)
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(destination.name + ".tmp")
    shutil.copyfile(local_file, tmp)
    os.replace(tmp, destination)


def upload_tree(local_dir, destination, last=()) -> list:
    """Copies every file under the local folder ``local_dir`` to the same relative paths under ``destination`` (a URL
    or a local folder), each one whole (:func:`upload`), the relative POSIX paths in ``last`` after all the others and
    in that order: so a reader that waits for those (a SavedModel's ``saved_model.pb``) never sees the tree
    incomplete.

    Returns:
        The destinations written, in order.

    Raises:
        OSError: naming the file, when an upload fails; the files already uploaded are left for the caller.
    """
    local_dir, destination = Path(local_dir), as_path(destination)
    files = sorted(path.relative_to(local_dir).as_posix() for path in local_dir.rglob("*") if path.is_file())
    missing = [name for name in last if name not in files]
    if missing:
        raise ValueError(f"{local_dir} holds no {', '.join(missing)}")
    order = [name for name in files if name not in last] + list(last)
    written = []
    for name in order:
        target = destination / name
        with gfile_errors(target):
            upload(local_dir / name, target)
        written.append(target)
    return written


def _download(source: "URLPath", target: Path):
    if source.is_dir():
        target.mkdir()
        for child in source.iterdir():
            _download(child, target / child.name)
    else:
        _gfile().copy(str(source), os.fspath(target), overwrite=True)


@contextlib.contextmanager
def local_copy(path):
    """A local path with the content of ``path`` (a file or a folder, with its sub-folders): ``path`` itself when it
    is local, else a temporary download that is removed afterwards. The local name keeps the remote one (Keras checks
    suffixes).

    Raises:
        OSError: naming ``path``, when it is missing or cannot be read.
    """
    path = as_path(path)
    if not isinstance(path, URLPath):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="sr_lib_") as tmp:
        target = Path(tmp) / path.name
        with gfile_errors(path):
            if not path.exists():
                raise FileNotFoundError(f"not found: {path}")
            _download(path, target)
        yield target


@contextlib.contextmanager
def gfile_errors(path=None):
    """Turns TensorFlow's file-system errors (``tf.errors.OpError``: an unknown URL scheme, a missing object, no
    permission, an unreachable bucket) into an ``OSError`` (``FileNotFoundError`` for a missing one) whose one-line
    message names ``path``, the kind of error the command line reports without a traceback."""
    try:
        yield
    except Exception as error:
        tf = sys.modules.get("tensorflow")
        if tf is None or not isinstance(error, tf.errors.OpError):
            raise
        text = str(getattr(error, "message", "") or error).strip()
        first = text.splitlines()[0][:300] if text else type(error).__name__
        if path is not None and str(path) not in first:
            first = f"{path}: {first}"
        kind = FileNotFoundError if isinstance(error, tf.errors.NotFoundError) else OSError
        raise kind(f"{first} ({type(error).__name__})") from None


def write_bytes(path, data: bytes):
    """Writes a file whole: locally to a temporary name, flushed to disk, then renamed into place (atomic on POSIX);
    remotely as one object."""
    path = as_path(path)
    if isinstance(path, URLPath):
        with gfile_errors(path):
            path.write_bytes(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def rmtree(path):
    """Removes a folder and everything in it, if it exists."""
    path = as_path(path)
    if not isinstance(path, URLPath):
        shutil.rmtree(path, ignore_errors=True)
        return
    if not path.exists():
        return
    import tensorflow as tf

    try:
        _gfile().rmtree(str(path))
    except tf.errors.NotFoundError:  # ram:// folders made implicitly by writing files in them: remove file by file.
        for folder, _, files in list(_gfile().walk(str(path), topdown=False)):
            for name in files:
                _gfile().remove(f"{folder.rstrip('/')}/{name}")


def remove(path):
    """Removes a file if it exists."""
    path = as_path(path)
    if isinstance(path, URLPath):
        if path.exists():
            _gfile().remove(str(path))
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def read_log(path) -> list[dict]:
    """The rows of a ``log.csv`` (local or remote) as dicts of floats, NaN where a cell is not a number (empty if the
    file does not exist yet).

    Raises:
        OSError: naming ``path``, when its store cannot be read.
    """
    path = as_path(path)
    with gfile_errors(path):
        if not path.is_file():
            return []
        text = path.read_text()
    return [{key: _to_float(value) for key, value in row.items()}
            for row in csv.DictReader(io.StringIO(text, newline=""))]


def _to_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@contextlib.contextmanager
def publish_folder(destination, last=()):
    """Yields an empty local folder to fill; when the block succeeds, puts it at ``destination`` whole, replacing
    what was there. Locally: one rename of a sibling staging folder, its files flushed to disk first. Remotely: every
    file uploaded, the relative paths in ``last`` after all the others (the files whose presence marks the folder
    complete: a checkpoint's ``state.json``, a SavedModel's ``saved_model.pb``); an old folder is removed first, its
    ``last`` files first of all, so no reader ever sees a mixture. If the block fails nothing is published; if the
    upload fails, what it wrote is removed (best effort) and the error re-raised.
    """
    destination = as_path(destination)
    if isinstance(destination, URLPath):
        with tempfile.TemporaryDirectory(prefix="sr_lib_") as tmp:
            staging = Path(tmp) / destination.name
            staging.mkdir()
            yield staging
            with gfile_errors(destination):
                if destination.exists():
                    for name in last:
                        remove(destination / name)
                    rmtree(destination)
            try:
                upload_tree(staging, destination, last=last)
            except BaseException:
                try:
                    rmtree(destination)
                except Exception:  # The store may be what failed: the upload's own error is the one to report.
                    pass
                raise
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    try:
        yield staging
        for child in staging.rglob("*"):
            if child.is_file():
                with open(child, "rb") as handle:
                    os.fsync(handle.fileno())
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(staging, destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
