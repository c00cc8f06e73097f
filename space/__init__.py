"""The FFNet search space: points (`Arch`), domains (`SearchSpace`), published variants, builder."""

from ffnet_nas.space.arch import Arch, Block, parse_code, resolve
from ffnet_nas.space.builder import build_model
from ffnet_nas.space.catalogue import PublishedVariant, get_variant, published_variants, variants
from ffnet_nas.space.errors import InvalidInput

__all__ = [
    "Arch",
    "Block",
    "InvalidInput",
    "PublishedVariant",
    "build_model",
    "get_variant",
    "parse_code",
    "published_variants",
    "resolve",
    "variants",
]
