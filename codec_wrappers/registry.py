"""Codec families and loading: variant id + weights spec -> ready :class:`Codec`.

A family is a callable ``load_codec(variant, weights: ResolvedWeights, device="cpu") -> Codec``.
Built-in families live in modules imported lazily (so a missing or half-built native family never
breaks the others); plugins register through the ``ncst.codecs`` entry-point group
(name = family, value = ``"module:load_codec"``) or at run time with :func:`register_family`.
"""
from __future__ import annotations

import importlib
import os
from typing import Callable, Union

from codec_wrappers.base import Codec, ResolvedWeights, Variant
from codec_wrappers.catalog import get_variant, plugin_entry_points
from codec_wrappers.weights import resolve_weights

Loader = Callable[..., Codec]

# family -> module exposing load_codec(variant, weights, device)
BUILTIN_FAMILIES: dict[str, str] = {
    "encodec": "codec_wrappers.encodec_wrapper",
    "dac": "codec_wrappers.dac_wrapper",
    "snac": "codec_wrappers.snac_wrapper",
    "speechtokenizer": "codec_wrappers.speechtokenizer_wrapper",
    "mimi": "codec_wrappers.mimi_wrapper",
    "toy": "codec_wrappers.toy",
    "wavtokenizer": "codec_wrappers.wavtokenizer",
    "hificodec": "codec_wrappers.hificodec",
    "soundstream": "codec_wrappers.soundstream",
    "funcodec": "codec_wrappers.funcodec",
    "facodec": "codec_wrappers.facodec",
    "audiodec": "codec_wrappers.audiodec",
    "spectral_codec": "codec_wrappers.spectral_codec",
    "ticodec": "codec_wrappers.ticodec",
    "sqcodec": "codec_wrappers.sqcodec",
    "bigcodec": "codec_wrappers.bigcodec",
}

_registered: dict[str, Loader] = {}


class FamilyNotImplemented(NotImplementedError):
    """The family of a variant has no loader (module not written yet, or plugin not installed)."""


def register_family(name: str, loader: Loader) -> None:
    """Register (or replace) the loader of codec family ``name`` for this process."""
    if not callable(loader):
        raise TypeError(f"loader for family {name!r} must be callable, got {type(loader).__name__}")
    _registered[name] = loader


def unregister_family(name: str) -> None:
    _registered.pop(name, None)


def _plugin_loader(name: str) -> Loader | None:
    for ep in plugin_entry_points():
        if ep.name == name:
            loader = ep.load()
            if not callable(loader):
                raise TypeError(f"codec plugin {name!r} ({ep.value}) is not callable")
            return loader
    return None


def _resolve_loader(family: str) -> tuple[Loader | None, str]:
    """(loader or None, status text)."""
    if family in _registered:
        return _registered[family], "registered"
    module_name = BUILTIN_FAMILIES.get(family)
    if module_name is not None:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None, f"not implemented (no module {module_name})"
            return None, f"broken: {module_name} needs missing module {exc.name!r}"
        except Exception as exc:  # report, do not crash the listing
            return None, f"broken: importing {module_name} failed ({type(exc).__name__}: {exc})"
        loader = getattr(module, "load_codec", None)
        if not callable(loader):
            return None, f"not implemented ({module_name} has no load_codec)"
        return loader, "built-in"
    try:
        loader = _plugin_loader(family)
    except Exception as exc:
        return None, f"broken plugin: {type(exc).__name__}: {exc}"
    if loader is not None:
        return loader, "plugin"
    return None, "not implemented (no built-in module or ncst.codecs plugin)"


def family_status(variant: Union[str, Variant]) -> str:
    """'built-in' | 'plugin' | 'registered' | 'not implemented (...)' | 'broken: ...'."""
    v = variant if isinstance(variant, Variant) else get_variant(variant)
    return _resolve_loader(v.family)[1]


def is_implemented(variant_or_id: Union[str, Variant]) -> bool:
    """True when the variant's family has a loader that imports."""
    v = variant_or_id if isinstance(variant_or_id, Variant) else get_variant(variant_or_id)
    return _resolve_loader(v.family)[0] is not None


def load_codec(
    variant: Union[str, Variant], weights: str | os.PathLike | None = None, device: str = "cpu"
) -> Codec:
    """Load a variant, ready for ``resynthesize`` (eval mode, on ``device``).

    Args:
        variant: catalog id or :class:`Variant`.
        weights: None (official files, see :func:`codec_wrappers.weights.resolve_weights`),
            ``"random"`` / ``"random:<seed>"`` (seeded official architecture), or a file/folder path.
        device: torch device string.
    """
    v = variant if isinstance(variant, Variant) else get_variant(variant)
    loader, status = _resolve_loader(v.family)
    if loader is None:
        raise FamilyNotImplemented(f"codec variant {v.id!r}: family {v.family!r} is {status}")
    resolved: ResolvedWeights = resolve_weights(v, weights)
    codec = loader(v, resolved, device=device)
    if not isinstance(codec, Codec):
        raise TypeError(f"family {v.family!r} returned {type(codec).__name__}, not a Codec")
    return codec
