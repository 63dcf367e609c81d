"""The Python globals a pickle would import, read without unpickling (``pickletools.genops``).

``torch.load(weights_only=True)`` names the global it refuses in a zip checkpoint, but a raw
pickle (``pickle.dump``, protocol 4 or 5) stops it at the first opcode it does not know
(``Unsupported operand 149``) before it sees the global: reading the opcodes names it anyway.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path
from typing import Union

# Globals that torch's safe loading accepts in the files it writes (tensors, their storages, ordered dicts).
_SAFE_PREFIXES = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset")
_MAX_PICKLES = 8  # a legacy torch.save file is a few pickles in a row (magic, protocol, sys info, data, keys)


def pickled_globals(path: Union[str, Path], limit: int = 256 * 1024 * 1024) -> list[str]:
    """``module.name`` of every global the (non-zip) pickle file at ``path`` refers to, other than
    the torch ones safe loading accepts, in file order; [] for a zip file or an unreadable one."""
    path = Path(path)
    if zipfile.is_zipfile(path) or path.stat().st_size > limit:
        return []
    stream = io.BytesIO(path.read_bytes())
    found: list[str] = []
    strings: list[str] = []
    for _ in range(_MAX_PICKLES):
        if stream.tell() >= len(stream.getbuffer()):
            break
        try:
            for op, arg, _ in pickletools.genops(stream):
                if isinstance(arg, str):
                    strings.append(arg)
                if op.name == "GLOBAL" and isinstance(arg, str):
                    found.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
        except Exception:  # not (or no longer) a pickle: what was read so far is the answer
            break
    return [g for g in dict.fromkeys(found) if not g.startswith(_SAFE_PREFIXES)]
