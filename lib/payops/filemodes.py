"""Owner-only files and folders for what payops keeps on disk (issue #19: least privilege on a shared host).

The archive (run folders, executed notebooks, HTML, manifests, ``CHAIN.jsonl``), the reconciliation page
cache and a SQLite database payops creates hold studio names, emails, amounts and approver ids: they are
created for their owner alone — files ``0600``, folders ``0700``. ``PAYOPS_ARCHIVE_GROUP`` (a group name or
number) opens the *archive* to one group for auditors: archive files ``0640``, folders ``2750`` (setgid, so
what is created inside keeps the group), owned by that group. Others never get a bit.

Modes are set explicitly (``chmod`` after creating or writing), never through the process umask: a
notebook kernel, papermill and nbconvert write with the umask they inherited, and sealing a run sets every
file and folder of it to these modes before it is hashed.
"""

from __future__ import annotations

import grp
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from payops.errors import ArchiveError, ConfigError

GROUP_VARIABLE = "PAYOPS_ARCHIVE_GROUP"


@dataclass(frozen=True)
class Modes:
    """The modes (and group) for files and folders of one kind of storage."""

    gid: int | None = None
    group: str | None = None

    @property
    def file_mode(self) -> int:
        return 0o640 if self.gid is not None else 0o600

    @property
    def dir_mode(self) -> int:
        return 0o2750 if self.gid is not None else 0o700


PRIVATE = Modes()


def modes_for_group(group: str | None) -> Modes:
    """Owner-only modes, or group-readable ones for ``group`` (a name or a number); an unknown group is a
    ConfigError naming ``PAYOPS_ARCHIVE_GROUP``."""
    if group is None or not str(group).strip():
        return PRIVATE
    name = str(group).strip()
    try:
        gid = int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"{GROUP_VARIABLE}: no group named {name!r} on this host") from None
    return Modes(gid=gid, group=name)


def archive_modes() -> Modes:
    """The archive's modes from the settings (``PAYOPS_ARCHIVE_GROUP``)."""
    from payops.config import get_settings

    return modes_for_group(get_settings().archive_group)


def apply(path: Path, modes: Modes, *, is_dir: bool | None = None) -> None:
    """Give ``path`` its mode (and group). Raises ArchiveError when the owner cannot (not ours, not a member)."""
    is_dir = path.is_dir() if is_dir is None else is_dir
    try:
        if modes.gid is not None and path.stat().st_gid != modes.gid:
            os.chown(path, -1, modes.gid)
        os.chmod(path, modes.dir_mode if is_dir else modes.file_mode)
    except PermissionError as exc:
        hint = f" (is this user in the group {modes.group!r} of {GROUP_VARIABLE}?)" if modes.gid is not None else ""
        raise ArchiveError(f"cannot restrict {path}: {exc.strerror}{hint}") from exc


def make_dirs(folder: Path, modes: Modes, *, below: Path | None = None) -> Path:
    """Create ``folder`` and its missing parents; the folders from ``below`` (included) down to ``folder`` get
    ``modes`` whether they existed or not, folders above ``below`` are created the ordinary way."""
    folder = Path(folder)
    lineage = [folder, *folder.parents]
    below = Path(below) if below is not None else folder
    if below not in lineage:
        raise ValueError(f"{folder} is not below {below}")
    below.parent.mkdir(parents=True, exist_ok=True)
    for part in reversed(lineage[:lineage.index(below) + 1]):  # below … folder
        part.mkdir(mode=0o700, exist_ok=True)
        apply(part, modes, is_dir=True)
    return folder


def create_file(path: Path, modes: Modes, *, exclusive: bool = False, append: bool = False) -> int:
    """Open ``path`` for writing (created ``modes.file_mode``: never readable by others, even for an instant)
    and return the descriptor; an existing file is given the mode too."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else 0) | (os.O_APPEND if append else 0)
    fd = os.open(path, flags, 0o600)
    try:
        if modes.gid is not None:
            os.fchown(fd, -1, modes.gid)
        os.fchmod(fd, modes.file_mode)
    except PermissionError as exc:
        os.close(fd)
        raise ArchiveError(f"cannot restrict {path}: {exc.strerror}") from exc
    return fd


def secure_tree(folder: Path, modes: Modes) -> None:
    """``folder``, every folder and every regular file below it: ``modes`` (symlinks are left alone)."""
    apply(folder, modes, is_dir=True)
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                apply(p, modes, is_dir=True)
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink() and p.is_file():
                apply(p, modes, is_dir=False)


def open_to_others(root: Path) -> list[tuple[str, int]]:
    """Every file or folder at or below ``root`` that others (not owner, not group) may read or enter, as
    (path relative to ``root``, mode), in walk order."""
    out: list[tuple[str, int]] = []
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [None, *sorted(filenames)]:
            p = Path(dirpath) if name is None else Path(dirpath) / name
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & (stat.S_IROTH | stat.S_IWOTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)):
                out.append((p.relative_to(root).as_posix() or ".", stat.S_IMODE(st.st_mode)))
    return out


def private_sqlite_file(database: Path) -> None:
    """A SQLite database file payops is about to open: created ``0600`` (its folder ``0700`` if payops creates
    it), an existing one that others or the group could read narrowed to ``0600``. SQLite gives its ``-wal``
    and ``-shm`` files the database's mode."""
    database = Path(database)
    if not database.parent.exists():
        database.parent.parent.mkdir(parents=True, exist_ok=True)
        database.parent.mkdir(mode=0o700, exist_ok=True)
        os.chmod(database.parent, 0o700)
    if not database.exists():
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(database, 0o600)
    elif stat.S_IMODE(database.stat().st_mode) & 0o077 and database.stat().st_uid == os.getuid():
        os.chmod(database, 0o600)
