"""Write-to-temporary-then-rename helpers shared by all datasets.

``tempfile.mkstemp``/``mkdtemp`` create private files (0600) and folders (0700) whatever the
umask, and ``os.replace`` keeps that mode, so every output would be unreadable to other users
and services. The helpers give the temporary file or folder the mode a plainly created one
would have (0644 / 0755 under the usual umask 022) before it is renamed into place.

A process killed mid-write (``kill -9``) cannot remove its temporary file: it stays beside the
target as ``.<name>.<8 random characters>.tmp`` (``.old`` for a folder being swapped).
:func:`stale_temporaries` finds exactly those names and a run removes them at its start
(``outputs.py``), so no DVC output keeps one. A full disk ends in :class:`DiskFullError`, whose
message names the file and says so (whatever the writer -- torch, numpy, pandas -- raised).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # elsewhere the only way is to set it and put it back
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _default_mode(path: Path, *, directory: bool) -> None:
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


class DiskFullError(OSError):
    """An output could not be written because its file system is full (``ENOSPC``)."""


def _is_disk_full(exc: BaseException) -> bool:
    """ENOSPC anywhere in the chain: torch reports it as a RuntimeError raised while handling it."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if (isinstance(cur, OSError) and cur.errno == errno.ENOSPC) or "No space left on device" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def disk_full_error(target: Path, exc: BaseException) -> DiskFullError:
    """The error to raise for ``exc`` (an ENOSPC) while writing ``target``: path, cause, way out."""
    folder = Path(target).parent
    return DiskFullError(
        errno.ENOSPC,
        f"{target}: disk full, the file was not written (No space left on device). Free space on the "
        f"disk holding {folder} (see `df -h {folder}`) and run the same command again: outputs already "
        f"written are kept and a model's training resumes from its last checkpoint",
    )


@contextmanager
def _disk_full_names(target: Path) -> Iterator[None]:
    try:
        yield
    except DiskFullError:
        raise
    except BaseException as exc:
        if _is_disk_full(exc):
            raise disk_full_error(target, exc) from exc
        raise


#: ``tempfile.mkstemp``'s random part: 8 characters of this alphabet.
_RANDOM = r"[a-z0-9_]{8}"


def is_stale_temporary(path: Path, target: Path) -> bool:
    """Whether ``path`` is a temporary file/folder :func:`atomic_path`/:func:`atomic_dir` made for ``target``."""
    pattern = re.escape(f".{target.name}.") + _RANDOM + r"\.(tmp|old)"
    return path.parent == target.parent and re.fullmatch(pattern, path.name) is not None


def stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """The temporaries of ``target`` left beside it by a killed writer (none when the folder is absent)."""
    target = Path(target)
    try:
        entries = list(target.parent.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(p for p in entries if is_stale_temporary(p, target))


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Remove :func:`stale_temporaries` of ``target``; only call it while no writer of ``target``
    runs (a run holds its pipeline's lock). Returns what was removed."""
    removed = []
    for path in stale_temporaries(target):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically.

    On any error (or KeyboardInterrupt) the temporary file is removed and ``target`` keeps its
    previous content. The new file has the mode the umask gives new files.
    """
    target = Path(target)
    with _disk_full_names(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _disk_full_names(target):
            yield tmp_path
            _default_mode(tmp_path, directory=False)
            os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it takes ``target``'s place.

    The old folder is moved aside first and deleted after the swap, so at every moment either
    the complete old or the complete new folder is at ``target``. The new folder has the mode
    the umask gives new folders.
    """
    target = Path(target)
    with _disk_full_names(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    old: Path | None = None
    try:
        with _disk_full_names(target):
            yield tmp
        _default_mode(tmp, directory=True)
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
            old.rmdir()
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:  # put the previous folder back before giving up
                os.replace(old, target)
                old = None
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
