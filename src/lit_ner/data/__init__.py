"""Everything before the model: where the splits come from (sources), how files are parsed (formats), tag schemes,
alignment, batching and the NerDataModule."""

from importlib import import_module
from typing import Any

__all__ = ["NerDataModule"]

# NerDataModule imports Lightning: load it on first use, so that `lit_ner.data.encode` (which lit_ner.predict
# uses) stays free of the training stack
_LAZY = {"NerDataModule": "lit_ner.data.datamodule"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value
