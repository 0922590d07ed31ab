"""Text without tags, read to be tagged: predict's input records (`read_documents`) and distillation's unlabelled
sentences (`unlabelled_sentences`), which read text and JSON lines with predict's reader and CoNLL files as training
and predict read them (`lit_ner.data.formats.conll_lines`)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lit_ner.data.formats import conll_lines, conll_words, numbered_runs, parse_json
from lit_ner.data.words import pretokenizer
from lit_ner.errors import ConfigError, DataError

JSON_LINES = (".jsonl", ".json")
# CoNLL columns: the word in the first, any other (a tag, a part of speech) not read; no suffix: WikiANN's `train`
CONLL = (".conll", ".iob", ".bio", ".tsv", "")
UNLABELLED = (".txt", *JSON_LINES, *CONLL)


def read_documents(path: Path, key: str = "input") -> list[dict[str, Any]]:
    """Records to tag: plain text, one document a line; or (.jsonl, .json) JSON lines with `text` or `tokens` (and
    optionally `document`: consecutive `tokens` records with the same value are the sentences of one document).
    Errors name the setting `key` that gave the file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{key}={path}: cannot read the file ({err.strerror})") from None
    json_lines = path.suffix in JSON_LINES
    if json_lines and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        # one JSON array (what json.dump writes) fails on its first line with a message that does not say why
        raise DataError(f"{key}={path} must be JSON Lines: one object a line, not one JSON array")
    lines = data.splitlines()
    records = []
    for line_number, line in enumerate(lines, 1):
        try:
            text = line.decode("utf-8-sig" if line_number == 1 else "utf-8")  # a byte-order mark may open the file
            if json_lines and not text.strip():
                continue
            # strict UTF-8 decoding leaves no lone surrogate in plain text; a JSON escape can make one (parse_json)
            record = parse_json(text, f"{key}={path}, line {line_number}") if json_lines else {"text": text}
            fields = record if isinstance(record, dict) else {}
            tokens = fields.get("tokens")
            words_ok = isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)
            if not (words_ok or (tokens is None and isinstance(fields.get("text"), str))):
                raise ValueError('expected a JSON object with a "text" string or a "tokens" list of strings')
        except DataError:
            raise
        except ValueError as err:  # undecodable bytes and bad JSON are ValueErrors too
            raise DataError(f"{key}={path}, line {line_number}: {err}") from None
        records.append(record)
    return records


def unlabelled_sentences(
    files: Sequence[Path], split: str = "punctuation", token_prefix: str | None = None, key: str = "distill.unlabelled"
) -> tuple[list[list[str]], list[int]]:
    """The sentences of `files` as words (`token_prefix` stripped from each), each with its document, numbered on
    across the files so that none continues into the next; sentences without words are left out. `split`: the
    pre-tokenizer of text (data.pretokenizer); `key`: the setting that gave the files, which bad input names."""
    sentences: list[list[str]] = []
    documents: list[int] = []
    for path in files:
        words, in_file = file_sentences(path, split, key)
        first = documents[-1] + 1 if documents else 0
        for sentence, document in zip(words, in_file):
            sentence = [w[len(token_prefix):] if token_prefix and w.startswith(token_prefix) else w for w in sentence]
            if sentence:
                sentences.append(sentence)
                documents.append(first + document)
    if not sentences:
        raise DataError(f"{key}: {', '.join(map(str, files))} hold no words; give sentences to tag")
    return sentences, documents


def file_sentences(path: Path, split: str, key: str) -> tuple[list[list[str]], list[int]]:
    """One file's sentences and their documents, read by its suffix: `.txt`, a sentence a line, and JSON lines'
    `text`, split into words by the pre-tokenizer `split`; JSON lines' `tokens` (consecutive ones with the same
    `document` form one document); CoNLL columns (`CONLL`), the word in the first (-DOCSTART- starts a document)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ConfigError(f"{key}: {path} is not a file; give files of unlabelled sentences")
    if suffix not in UNLABELLED:
        raise ConfigError(
            f"{key}: {path} ends in {suffix!r}, which is no format of unlabelled sentences: .txt (a sentence a line), "
            ".jsonl or .json (`tokens` or `text` a line), or CoNLL columns (.conll, .iob, .bio, .tsv or no suffix; "
            "the word in the first column, any other column not read)"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{key}: {path} is empty; give it sentences, or leave it out")
    if suffix in CONLL:
        try:
            lines, sep, numbers, documents = conll_lines(path)
        except OSError as err:
            raise DataError(f"{key}: {path} cannot be read ({err.strerror})") from None
        except DataError as err:  # it names the file and the line; the key says where the file came from
            raise DataError(f"{key}: {err}") from None
        return conll_words(lines, sep, numbers), documents
    records = read_documents(path, key)  # its errors name the key, the file and the line
    words_of = pretokenizer(split)
    words = [r["tokens"] if "tokens" in r else [w for w, _, _ in words_of(r["text"])] for r in records]
    # a record without a document (and a line of text) is one of its own, as predict reads them
    return words, numbered_runs([r["document"] if r.get("document") is not None else object() for r in records])
