"""Every file and folder lit_ner writes is written whole or not at all: under a temporary name beside its target (one
style, `.partial-<host>-<pid>-<token>.<name>`), flushed to disk, then renamed into place in one step. What a killed
run leaves is removed by a later run once the process named in it is gone."""

import ctypes
import errno
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

HOST = socket.gethostname()
# partial: a file or folder being written; work: a run's working folder; old: a folder swapped out (see _exchange)
_OWNED = re.compile(r"\.(partial|work|old)-(.+)-(\d+)-([0-9a-f]{8})\.(.+)", re.DOTALL)
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None


def owned_name(target: Path, role: str) -> Path:
    """A name beside `target` that says which process owns it (host and pid), so that a later run can tell a dead
    run's leftover from a living run's work; the token keeps two writes of one process apart."""
    return target.with_name(f".{role}-{HOST}-{os.getpid()}-{secrets.token_hex(4)}.{target.name}")


@contextmanager
def replaced(target: Path, keep: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """A temporary path beside `target` to write a file or a folder at; when the block ends without an error it is
    flushed to disk (every file, then the folders) and takes `target`'s place in one step, and the rename itself is
    flushed. A folder replaces an existing one by an exchange (`_exchange`): `target` names a whole folder at every
    moment. With `keep`, an existing folder for which `keep(target)` is true stays (another process wrote the same
    first) and the new one is dropped. On an error nothing is left but what was there before."""
    remove_leftovers(target.parent, target.name)
    temp = owned_name(target, "partial")
    try:
        yield temp
        _sync(temp)
        if temp.is_dir():
            _put_folder(temp, target, keep)
        else:
            os.replace(temp, target)  # atomic within one file system, hence the same folder
        _fsync(target.parent)
    finally:
        _remove(temp)  # what failed to be written, or the folder swapped out


@contextmanager
def writing(path: Path, mode: str = "w", newline: str | None = None) -> Iterator[IO]:
    """An open file (text in UTF-8, or binary with mode="wb") whose content becomes `path` once the block ends
    without an error (`replaced`)."""
    encoding = None if "b" in mode else "utf-8"
    with replaced(path) as temp, open(temp, mode, encoding=encoding, newline=newline) as f:
        yield f


def write_text(path: Path, text: str) -> None:
    """`path` holds `text` (UTF-8), whole: the old content stays until the new one is on disk."""
    with writing(path) as f:
        f.write(text)


@contextmanager
def work_folder(target: Path) -> Iterator[Path]:
    """A working folder beside `target`, owned by this process (`remove_leftovers` knows whose it is), removed when
    the block ends, whatever happens."""
    folder = owned_name(target, "work")
    folder.mkdir()
    try:
        yield folder
    finally:
        _remove(folder)


def remove_leftovers(folder: Path, name: str | None = None) -> list[str]:
    """Remove what killed runs left in `folder` (of `name` only, if given): the partial files and folders and the
    working folders whose owner, a process of this host, is gone; one still running keeps its own. A process of
    another host is never judged from here: its leftovers stay for a run on that host. Returns the names removed."""
    removed = []
    for entry in os.scandir(folder) if folder.is_dir() else ():
        owned = _OWNED.fullmatch(entry.name)
        if not owned or (name is not None and owned[5] != name) or owned[2] != HOST or _alive(int(owned[3])):
            continue
        target = folder / owned[5]
        try:
            if owned[1] == "old" and not os.path.lexists(target):  # the only copy left of a swap cut short
                os.rename(entry.path, target)
                continue
        except OSError:  # another run put it back first
            continue
        _remove(Path(entry.path))
        removed.append(entry.name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _put_folder(new: Path, target: Path, keep: Callable[[Path], bool] | None) -> None:
    try:
        os.rename(new, target)  # no folder there yet: in one step; an existing one makes it fail
        return
    except OSError as err:
        if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    if keep is None or not keep(target):
        _exchange(new, target)


def _exchange(new: Path, target: Path) -> None:
    """`new` in `target`'s place and the old folder at `new`, where the caller removes it. Linux swaps the two
    names in one step (renameat2 RENAME_EXCHANGE): there is no moment without a whole `target`, kill or power cut.
    Where the system or file system cannot (macOS, NFS), the old folder is renamed aside first and the new one in: a
    kill between the two renames leaves the old one as `.old-...`, and `remove_leftovers` puts it back."""
    if _LIBC is not None and hasattr(_LIBC, "renameat2"):
        paths = os.fsencode(new), os.fsencode(target)
        if _LIBC.renameat2(_AT_FDCWD, paths[0], _AT_FDCWD, paths[1], _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(target))
    aside = owned_name(target, "old")
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(aside, target)
        raise
    os.rename(aside, new)


def _sync(path: Path) -> None:
    """fsync a file, or a folder's files and then its folders (a rename is only as durable as the bytes named)."""
    folders = [path]
    if path.is_dir() and not path.is_symlink():
        folders = []
        for root, _, names in os.walk(path, topdown=False):
            folders.append(Path(root))
            for name in names:
                _fsync(Path(root) / name)
    for folder in folders:
        _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
