"""lit_ner's benchmarks, kept out of the installed package: they need the `dev` extra (the recipe side runs
transformers' Trainer, which needs accelerate) and run from the repository root, as `python -m benchmarks.<name>`.

train: training speed against the Hugging Face Trainer recipe (`make bench`, docs/benchmarks.md); quality: dev F1
against the recipe over seeds (docs/quality.md); predict: inference and service speed (docs/benchmarks.md);
measure: the data, meters and metrics they share; recipe: the Trainer baseline."""
