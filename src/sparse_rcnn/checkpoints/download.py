"""Published weights: downloaded once into the torch hub cache with their sha256 prefix checked."""

from __future__ import annotations

import logging
import re
import urllib.error
from pathlib import Path
from typing import Optional

import torch

from ..config import load_config
from .files import CheckpointError
from .zoo import ZOO

log = logging.getLogger(__name__)


def download(url: str, *, cache_dir: Optional[Path] = None, progress: bool = True) -> Path:
    """Download ``url`` once into the torch hub cache, checking the sha256 prefix in its name
    (``<name>-<8 hex>.pth``). Returns the local path."""
    cache_dir = Path(cache_dir or Path(torch.hub.get_dir()) / "checkpoints")
    cache_dir.mkdir(parents=True, exist_ok=True)
    filename = url.rsplit("/", 1)[-1]
    dst = cache_dir / filename
    if dst.exists():
        return dst
    m = re.search(r"-([a-f0-9]{8,})\.", filename)
    log.info("downloading %s to %s", url, dst)
    try:
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=m.group(1) if m else None, progress=progress)
    except RuntimeError as e:
        if "invalid hash" in str(e):
            raise CheckpointError(f"download of {url} is corrupt (sha256 does not start with {m.group(1)}); try again") from None
        raise CheckpointError(f"download of {url} failed: {e}") from None
    except (urllib.error.URLError, OSError) as e:
        raise CheckpointError(f"cannot download {url}: {getattr(e, 'reason', e)}; check the network, or pass `weights` with a local file") from None
    return dst


def resolve_weights(weights: Optional[str], name: Optional[str]) -> Path:
    """A local path, an http(s) URL, or None for the published weights of the named config."""
    if weights is None:
        if name not in ZOO:
            load_config(name)  # an unknown name raises ConfigError with the closest match
            raise CheckpointError(f"no published weights for {name!r}; pass `weights` with a file")
        return download(ZOO[name].url)
    if weights.startswith(("http://", "https://")):
        return download(weights)
    return Path(weights)
