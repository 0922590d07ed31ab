"""Everything before the model: readers, tag schemes, alignment, batching and the NerDataModule."""

from lit_ner.data.datamodule import NerDataModule

__all__ = ["NerDataModule"]
