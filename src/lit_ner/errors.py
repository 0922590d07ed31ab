"""The errors lit_ner raises for bad input: each message names the file and line or the config key, and what to do."""


class DataError(ValueError):
    """Bad or unreadable NER data (a file, a line, a tag, a split)."""


class ConfigError(ValueError):
    """A configuration value that cannot work (a key, a path, a model)."""
