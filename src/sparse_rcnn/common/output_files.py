"""Files a command writes: never over a file it reads, checked before the work starts, and
replaced atomically with the umask's permissions.

Every command that writes (predict, eval, export, convert, train, demo) states what it reads and
what it will write; ``check_outputs`` refuses up front, with one line, an output that is one of
its inputs (the same file by ``os.path.samefile``, or by resolved path before it exists), two
outputs that are one file, an output file that is a folder, or a drawing folder that holds input
images. ``atomic_write`` writes a temporary file beside the target and renames it at the end, so
a reader finds the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Sequence, Union

log = logging.getLogger(__name__)
PathLike = Union[str, Path]


class OutputError(ValueError):
    """An output path cannot be used (it is an input, a folder, or not writable); the message says why."""


def _same(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)  # never raises (Path.resolve does on a symlink loop)


def check_outputs(
    writes: Iterable[Optional[PathLike]],
    reads: Iterable[Optional[PathLike]] = (),
    *,
    folders: Iterable[Optional[PathLike]] = (),
) -> None:
    """Refuse output files ``writes`` that are one of ``reads``, each other, or a folder, and
    output folders ``folders`` that are a file or hold one of ``reads`` directly (its drawings
    would sit among, and could replace, the inputs). None entries are ignored."""
    inputs = [Path(p) for p in reads if p is not None]
    seen: list[Path] = []
    for w in (Path(p) for p in writes if p is not None):
        if w.is_dir():
            raise OutputError(f"output {str(w)!r} is a folder; name a file")
        for r in inputs:
            if _same(w, r):
                raise OutputError(
                    f"output {str(w)!r} is also an input ({str(r)!r}); writing it would destroy it: choose "
                    "another output path"
                )
        for other in seen:
            if _same(w, other):
                raise OutputError(f"two outputs are the same file {str(w)!r}; choose different paths")
        seen.append(w)
    for d in (Path(p) for p in folders if p is not None):
        if d.exists() and not d.is_dir():
            raise OutputError(f"output folder {str(d)!r} exists and is not a folder")
        for r in inputs:
            if d.exists() and _same(d, r.parent):
                raise OutputError(f"output folder {str(d)!r} holds input images ({str(r)!r}); choose another folder")


def check_output_dir(folder: PathLike) -> Path:
    """A folder to write into: created if absent; refused (one line) if it is a file or not writable."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {str(folder)!r} is a file; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # a real probe: os.access ignores read-only mounts for root
            pass
    except OSError as e:
        raise OutputError(f"cannot write to {str(folder)!r}: {e.strerror or e}") from None
    return folder


def claim_folder(folder: PathLike, marker: str) -> Path:
    """A folder this tool may fill: absent, empty, or marked by an earlier run (file ``marker``).
    Anything else (a user's data) is refused; the marker is written before anything else."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not (folder / marker).exists():
        raise OutputError(
            f"{str(folder)!r} is not empty and was not written by an earlier run (no {marker}); "
            "choose an empty or new `output_dir`"
        )
    check_output_dir(folder)
    (folder / marker).touch()
    return folder


def unique_names(paths: Sequence[PathLike], suffix: str = ".png") -> list[str]:
    """One file name per input: ``<stem><suffix>``; inputs whose stems collide (``a/x.png``,
    ``b/x.jpg``) get ``<stem>-2<suffix>``, ``<stem>-3<suffix>``, ... in input order after the first."""
    stems = [Path(p).stem for p in paths]
    taken = Counter(s + suffix for s in stems)
    seen: Counter = Counter()
    names = []
    for stem in stems:
        seen[stem] += 1
        name = stem + suffix
        k = seen[stem]
        while k > 1 and (name := f"{stem}-{k}{suffix}") in taken:
            k += 1
        if k > 1:
            taken[name] += 1
            seen[stem] = k
        names.append(name)
    return names


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; set back at once
    os.umask(mask)
    return mask


class AtomicFile:
    """The temporary file of ``atomic_write``: ``file`` to write; ``keep_as(path)`` keeps what
    was written under another name when the write does not complete."""

    def __init__(self, path: Path, file: IO, tmp: str) -> None:
        self.path, self.file, self.tmp = path, file, tmp
        self.kept: Optional[Path] = None

    def keep_as(self, path: PathLike) -> None:
        self.kept = Path(path)


@contextmanager
def atomic_write(path: PathLike, mode: str = "w") -> Iterator[AtomicFile]:
    """Write ``path`` through a temporary file in its folder: flushed, fsynced, given the mode a
    plain ``open`` would (0o666 minus the umask) and renamed over ``path`` when the block ends
    normally. On an error or interrupt ``path`` is left as it was, and the temporary file is
    removed (or renamed to the ``keep_as`` path). An OSError (full disk, read-only folder) names
    ``path``. Binary files are unbuffered and keep the OSError of a failed write, which is raised
    instead of what the writer made of it (``torch.save`` turns a full disk into an opaque
    ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _named(e, path) from None
    target: Optional[AtomicFile] = None
    try:
        with _RecordingFile(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding="utf-8") as f:
            target = AtomicFile(path, f, tmp)
            yield target
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException as e:
        if target is not None and target.kept is not None and os.path.exists(tmp):
            try:
                os.chmod(tmp, 0o666 & ~_umask())
                os.replace(tmp, target.kept)
            except OSError:
                pass
        _remove(tmp)
        failed = getattr(target.file, "error", None) if target is not None else None
        if isinstance(e, Exception) and not isinstance(e, OSError) and failed is not None:
            raise _named(failed, path) from None  # the cause, not the writer's wrapper of it
        if isinstance(e, OSError) and e.filename is None:
            raise _named(e, path) from None
        raise


class _RecordingFile(io.FileIO):
    """An unbuffered binary file that writes all it is given (a short write is continued, so that
    a full disk raises) and keeps the OSError of a failed write in ``error``."""

    error: Optional[OSError] = None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += super().write(view[done:]) or 0
        except OSError as e:
            self.error = e
            raise
        return done


@contextmanager
def naming(path: PathLike) -> Iterator[None]:
    """An OSError of the block that names no file (PIL and matplotlib on a full disk) is raised naming ``path``."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            raise _named(e, Path(path)) from None
        raise


def check_outside(folder: Optional[PathLike], inputs: Iterable[Optional[PathLike]]) -> None:
    """Refuse an output ``folder`` that is, or lies inside, one of the image folders ``inputs`` of
    a dataset being read: what it writes there would become images of that split on the next read."""
    if folder is None:
        return
    resolved = Path(os.path.realpath(folder))
    for d in (Path(os.path.realpath(p)) for p in inputs if p is not None):
        if resolved == d or d in resolved.parents:
            raise OutputError(
                f"output folder {str(folder)!r} lies inside {str(d)!r}, the images of the dataset being read; "
                "what is written there would become images of it: choose a folder outside it"
            )


def _named(e: OSError, path: Path) -> OSError:
    return type(e)(e.errno, e.strerror or str(e), str(path))


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
