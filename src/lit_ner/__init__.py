"""lit_ner: fine-tune BERT-family encoders for named entity recognition.

The commands from Python, each taking the command's own `key=value` overrides:

    from lit_ner import NerPredictor, evaluate, train

    result = train("experiment=local", "data.path=my_corpus/")  # python -m lit_ner.train ...; metrics.json's content
    report = evaluate(f"model={result['export']}", "data=local", "data.path=my_corpus/")  # report.json's content
    tagger = NerPredictor.from_pretrained(result["export"])
    tagger("Alan Walker wrote it in 1940.")  # [{"text", "type", "start", "end", "score", ...}]: lit_ner.Entity

`compose_config("train", overrides)` gives the composed config itself (for `lit_ner.train.train(cfg)`). Each name is
imported on first use, so `import lit_ner` loads neither torch nor Lightning nor transformers.
"""

from importlib import import_module
from typing import Any

__version__ = "0.2.0"
__all__ = ["Entity", "NerPredictor", "compose_config", "evaluate", "train"]

# train and evaluate are the command modules themselves, callable (lit_ner.cli.CallableModule): lit_ner.train(...)
# runs lit_ner.train.run(...), and `import lit_ner.train` cannot replace a function of the same name here
_LAZY = {"NerPredictor": "lit_ner.predictor", "Entity": "lit_ner.predictor", "compose_config": "lit_ner.app",
         "train": None, "evaluate": None}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name]
    value = import_module(f"lit_ner.{name}") if module is None else getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value
