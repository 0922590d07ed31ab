"""lit_ner: fine-tune BERT-family encoders for named entity recognition."""

__version__ = "0.2.0"
