"""Reading the text files of a dataset (split lists, label files, data.yaml) as users' tools write them.

UTF-8 with or without a byte order mark (what many Windows tools write); other encodings are
refused naming the file and the byte offset. YAML is read without anchors and aliases: a
``data.yaml`` has no use for them, and nested aliases expand exponentially (billion laughs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import yaml

from .validation import DataError


def read_text(path: Union[str, Path]) -> str:
    """The text of ``path``: UTF-8, a leading BOM dropped; ``DataError`` naming the first bad byte otherwise."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); save it as UTF-8"
        ) from None


class _NoAliases(yaml.SafeLoader):
    """PyYAML's safe loader, refusing ``*alias`` references (and so the anchors' expansion)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"YAML aliases (*{event.anchor}) are not accepted here", event.start_mark
            )
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` without aliases (raises ``yaml.YAMLError`` on one)."""
    return yaml.load(text, Loader=_NoAliases)
