"""The speed benchmark: lit_ner against the transformers Trainer recipe (`python -m lit_ner.bench`, docs/benchmarks.md).
measure: data, meters and the two metrics; recipe: the baseline; cli: the lit_ner side, the runs and the report."""
