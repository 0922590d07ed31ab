"""Text without tags, read to be tagged: predict's input records (`read_documents`)."""

from pathlib import Path
from typing import Any

from lit_ner.data.formats import parse_json
from lit_ner.errors import DataError

JSON_LINES = (".jsonl", ".json")


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
