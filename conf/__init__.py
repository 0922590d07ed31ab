"""The shipped Hydra configs, installed as package data: Hydra reads them as pkg://lit_ner.conf."""
