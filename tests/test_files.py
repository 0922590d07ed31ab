"""lit_ner.files: a file or folder is replaced whole or not at all, whatever step fails; what a dead run left is
removed (a swapped-out folder that is the only copy is put back), what a living run or another host owns stays."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lit_ner import files


def folder_with(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "config.json").write_text(text)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_file_is_replaced_whole_or_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    files.write_text(path, "old")
    with pytest.raises(OSError, match="disk gone"), files.writing(path) as f:
        f.write("half")
        raise OSError("disk gone")
    assert path.read_text() == "old" and listing(tmp_path) == ["metrics.json"]
    files.write_text(path, "new")
    assert path.read_text() == "new" and listing(tmp_path) == ["metrics.json"]


@pytest.mark.parametrize(
    "exchange, fails_at",
    [(True, None), (True, "flush"), (True, "after the swap"),
     (False, None), (False, "flush"), (False, "between the renames"), (False, "after the swap")],
)  # fmt: skip
def test_a_folder_is_swapped_with_a_whole_one_at_every_step(
    exchange: bool, fails_at: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export over an earlier one: a failure at any step leaves the old folder or the new one, whole, and nothing
    beside it. renameat2 swaps in one step; without it (macOS, NFS) the old folder is renamed aside first, and put
    back if the new one cannot be renamed in."""
    target = folder_with(tmp_path / "model", "old")
    if not exchange:
        monkeypatch.setattr(files, "_LIBC", None)
    steps = {
        "flush": (files, "_sync", lambda path: True),  # the new folder's files and folders to disk
        "between the renames": (os, "rename", lambda old, new: Path(new) == target and not target.exists()),
        "after the swap": (files, "_fsync", lambda path: Path(path) == tmp_path),  # the rename to disk
    }
    if fails_at:
        owner, name, now = steps[fails_at]
        real, failed = getattr(owner, name), []

        def once(*args):  # the step fails the first time, as a full disk or a kill would stop it
            if now(*args) and not failed:
                failed.append(args)
                raise OSError(fails_at)
            return real(*args)

        monkeypatch.setattr(owner, name, once)
    try:
        with files.replaced(target) as new:
            folder_with(new, "new")
    except OSError as err:
        assert str(err) == fails_at
    assert (target / "config.json").read_text() == ("new" if fails_at in (None, "after the swap") else "old")
    assert listing(tmp_path) == ["model"]


def test_a_folder_another_run_finished_first_is_kept(tmp_path: Path) -> None:
    target = folder_with(tmp_path / "entry", "first")
    with files.replaced(target, keep=lambda folder: (folder / "config.json").exists()) as new:
        folder_with(new, "second")
    assert (target / "config.json").read_text() == "first" and listing(tmp_path) == ["entry"]


def test_only_the_leftovers_of_dead_runs_of_this_host_are_removed(tmp_path: Path) -> None:
    dead, host = dead_pid(), socket.gethostname()
    left = {
        "killed": f".partial-{host}-{dead}-0123abcd.model",
        "killed work": f".work-{host}-{dead}-0123abcd.5f3a",
        "running": f".work-{host}-{os.getpid()}-0123abcd.5f3a",
        "another host": f".work-elsewhere-{dead}-0123abcd.5f3a",
        "only copy": f".old-{host}-{dead}-0123abcd.export",  # killed between the fallback's two renames
    }
    for name in left.values():
        folder_with(tmp_path / name, name)
    (tmp_path / "not ours.partial").write_text("")
    removed = files.remove_leftovers(tmp_path)
    assert sorted(removed) == sorted([left["killed"], left["killed work"]])
    assert listing(tmp_path) == sorted([left["running"], left["another host"], "export", "not ours.partial"])
    assert (tmp_path / "export" / "config.json").read_text() == left["only copy"]
