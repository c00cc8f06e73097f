"""The FFNet search space: points (`Arch`), domains (`SearchSpace`), published variants, builder.

The names below are imported on first use (PEP 562), not when the package is imported: the
builder pulls in torch, and light modules such as `ffnet_nas.space.errors` (which the CLI needs
before it knows whether any work will be done) must not pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Arch": "arch",
    "Block": "arch",
    "parse_code": "arch",
    "resolve": "arch",
    "build_model": "builder",
    "PublishedVariant": "catalogue",
    "get_variant": "catalogue",
    "published_variants": "catalogue",
    "variants": "catalogue",
    "InvalidInput": "errors",
    "PeerPoint": "peers",
    "get_peer": "peers",
    "peer_points": "peers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
