"""Every download of the package: published detector weights and torchvision's ImageNet ResNets.

Files go to the torch hub cache (``torch.hub.get_dir()/checkpoints``) once. A file whose name
carries its sha256 prefix (``<name>-<8+ hex>.<ext>``, as the zoo's and torchvision's do) is kept
under that name, torch hub's own layout (a ResNet torchvision already downloaded is reused): the
prefix is checked on download, so the name identifies the content. Any other URL is kept as
``<sha256 of the URL, 16 hex>-<name>``: two URLs ending in the same file name never share a file.
Without a network the error is one line naming the file, where to put it, and the other ways out.
"""

from __future__ import annotations

import hashlib
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
_HASHED = re.compile(r"-([a-f0-9]{8,})\.")


def hash_prefix(name: str) -> Optional[str]:
    """The sha256 prefix a file name carries (``resnet50-0676ba61.pth`` -> ``0676ba61``), or None."""
    m = _HASHED.search(name)
    return m.group(1) if m else None


def cache_path(url: str, cache_dir: Optional[Path] = None) -> Path:
    """Where ``download`` keeps ``url`` (see the module docstring)."""
    cache_dir = Path(cache_dir or Path(torch.hub.get_dir()) / "checkpoints")
    filename = url.rsplit("/", 1)[-1]
    if hash_prefix(filename):
        return cache_dir / filename
    return cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{filename}"


def download(
    url: str,
    *,
    cache_dir: Optional[Path] = None,
    progress: bool = True,
    ways_out: str = "pass `weights` with a local file",
) -> Path:
    """Download ``url`` once into the cache, checking the sha256 prefix its name carries.
    Returns the local path. ``ways_out``: what the error proposes besides putting the file in place."""
    dst = cache_path(url, cache_dir)
    if dst.exists():
        return dst
    prefix = hash_prefix(dst.name)
    log.info("downloading %s to %s", url, dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dst), hash_prefix=prefix, progress=progress)
    except RuntimeError as e:
        if "invalid hash" in str(e):
            raise CheckpointError(
                f"download of {url} is corrupt (sha256 does not start with {prefix}); try again"
            ) from None
        raise CheckpointError(f"download of {url} failed: {e}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e.strerror or e
        raise CheckpointError(
            f"cannot download {dst.name} ({reason}): without a network, put the file from {url} at {dst}, or {ways_out}"
        ) from None
    return dst


def check_hash(path: Path) -> None:
    """When ``path``'s name carries a sha256 prefix, its content must have it."""
    prefix = hash_prefix(path.name)
    if prefix is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(prefix):
        raise CheckpointError(
            f"{path}: its sha256 does not start with {prefix} as its name says; a corrupt or different file"
        )


def pretrained_state_dict(url: str, path: Optional[str] = None) -> dict[str, torch.Tensor]:
    """A backbone's published weights (a torchvision ResNet ``state_dict``): from ``path``, a
    local copy of the file at ``url`` (hash-checked when its name carries one), or downloaded
    from ``url``. Read with ``weights_only=True``."""
    if path is None:
        file = download(
            url,
            ways_out="pass `model.backbone_weights=PATH` (a copy of that file), `weights` "
            "to start from a whole detector, or `model.pretrained_backbone=false` to train "
            "from scratch",
        )
    else:
        file = Path(path)
        if not file.is_file():
            raise CheckpointError(
                f"`model.backbone_weights` {path!r} not found (a torchvision ResNet file, e.g. "
                f"{url.rsplit('/', 1)[-1]})"
            )
        check_hash(file)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt files
        raise CheckpointError(
            f"{file}: not a readable PyTorch file ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{file}: not a torchvision ResNet state_dict")
    return state


def resolve_weights(weights: Optional[str], name: Optional[str]) -> Path:
    """A local path, an http(s) URL, or None for the published weights of the named config."""
    if weights is None:
        if name is None:
            raise CheckpointError("give a model name, a checkpoint, or both")
        if name not in ZOO:
            load_config(name)  # an unknown name raises ConfigError with the closest match
            raise CheckpointError(f"no published weights for {name!r}; pass `weights` with a file")
        return download(ZOO[name].url)
    if weights.startswith(("http://", "https://")):
        return download(weights)
    return Path(weights)
