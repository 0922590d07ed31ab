"""Annotation-tool exports as training data: Label Studio's JSON and JSON-MIN and doccano's JSONL, their character
spans turned into words and IOB2 tags. Tasks and pre-annotations going the other way are
`lit_ner.data.preannotations`."""

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from lit_ner.data.schemes import longest_first, outermost_tags
from lit_ner.data.words import pretokenizer
from lit_ner.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

FORMATS = ("label-studio", "label-studio-min", "doccano")
SPAN_POLICIES = ("snap", "refuse")  # a span that cuts a word: extend it to whole words, or stop
# spans sharing a word: stop, keep the longest / first one, or keep them all (nested entities, for the span head;
# the tags then hold the outermost)
OVERLAP_POLICIES = ("refuse", "longest", "first", "keep")
# what Label Studio's JSON-MIN export adds to a task's data fields (label_studio_converter's convert_to_json_min)
_MIN_META = {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement"}
_EXAMPLES = 3  # examples of each reported problem in the log


@dataclass(frozen=True)
class SpanOptions:
    """The data.* settings for character-span formats: `text_field` (None: the one string field, else "text"),
    `span_policy` (snap|refuse), `overlap_policy` (refuse|longest|first) and `pretokenizer` (how the text becomes
    words: lit_ner.data.words, the same setting raw text is split by at prediction)."""

    text_field: str | None = None
    span_policy: str = "snap"
    overlap_policy: str = "refuse"
    pretokenizer: str = "punctuation"


class Span(NamedTuple):
    start: int
    end: int
    label: str


@dataclass
class SpanReport:
    """What reading a file's spans met, by kind: a count and the first few examples, logged once per file."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, problem: str = "") -> None:
        self.counts[kind] += 1
        if problem and len(self.examples.setdefault(kind, [])) < _EXAMPLES:
            self.examples[kind].append(problem)


def check_options(opts: SpanOptions) -> None:
    if opts.span_policy not in SPAN_POLICIES:
        raise ConfigError(f"data.span_policy={opts.span_policy!r} is not one of {'|'.join(SPAN_POLICIES)}")
    if opts.overlap_policy not in OVERLAP_POLICIES:
        raise ConfigError(f"data.overlap_policy={opts.overlap_policy!r} is not one of {'|'.join(OVERLAP_POLICIES)}")
    pretokenizer(opts.pretokenizer)  # an unknown name stops here, naming data.pretokenizer


# ---- Which format a file's records are in


def detect(records: Sequence[tuple[str, Any]], tokens_field: str = "tokens") -> str | None:
    """The format of a JSON file's records by their content, None for lit_ner's own tokens/tags records."""
    for _, record in records:
        kind = _kind(record, tokens_field) if isinstance(record, dict) else None
        if kind:
            return None if kind == "words" else kind
    first = records[0][1] if records else None  # doccano lines that all have `label: []` decide nothing above
    unlabelled = isinstance(first, dict) and ("label" in first or "entities" in first)
    return "doccano" if unlabelled and isinstance(first.get("text"), str) else None


def _kind(record: dict[str, Any], tokens_field: str) -> str | None:
    if isinstance(record.get("data"), dict):
        return "label-studio"
    if "annotation_id" in record or any(_is_regions(v) for v in record.values()):
        return "label-studio-min"
    if tokens_field in record:
        return "words"
    if not isinstance(record.get("text"), str):
        return None
    entities, label = record.get("entities") or [], record.get("label", record.get("labels")) or []
    if isinstance(entities, list) and entities and all(isinstance(e, dict) and "start_offset" in e for e in entities):
        return "doccano"
    if isinstance(label, list) and label and all(isinstance(item, list) and len(item) == 3 for item in label):
        return "doccano"
    return None


def _is_regions(value: Any) -> bool:
    """Label Studio's regions (each with its `labels`), not word-offset entities (lit_ner's or GENIA's spans)."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and {"start", "labels"} <= v.keys()
                                                           for v in value)  # fmt: skip


# ---- Records to words and tags


def read_records(
    records: Sequence[tuple[str, Any]], kind: str, opts: SpanOptions, source: str
) -> tuple[list[list[str]], list[list[str]]]:
    """The words and IOB2 tags of a file's records in format `kind`, and with data.overlap_policy=keep each
    sentence's entities as (type, first word, end word) (else None); tasks without an annotation are skipped and
    counted. `records` are (file:line, record) pairs; `source` names the file in the summary log."""
    report = SpanReport()
    parse = {"label-studio": _label_studio, "label-studio-min": _label_studio_min, "doccano": _doccano}[kind]
    sentences, tags, entities = [], [], []
    for n, (where, record) in enumerate(_newest_min_rows(records) if kind == "label-studio-min" else records):
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a {kind} task object, got {type(record).__name__}")
        where = f"{where} ({task_name(record, n)})"
        parsed = parse(record, where, opts)
        if parsed is None:
            report.note("skipped")
            continue
        text, spans, tokens = parsed
        words = _words(text, tokens, report, opts.pretokenizer)
        sentences.append([word for word, _, _ in words])
        kept = word_spans(text, words, spans, where, opts, report)
        tags.append(outermost_tags(len(words), longest_first(kept)))
        entities.append(kept)
    _log_summary(source, report)
    return sentences, tags, entities if opts.overlap_policy == "keep" else None


def task_name(record: Mapping[str, Any], index: int) -> str:
    """How messages name a task: by its id, else by its place in the file (from 1)."""
    return f"task {record['id']}" if "id" in record else f"record {index + 1}"


def _label_studio(record: dict[str, Any], where: str, opts: SpanOptions) -> tuple[str, list[Span], Any] | None:
    data = record.get("data")
    if not isinstance(data, dict):
        raise DataError(f"{where}: a Label Studio task needs a `data` object; set data.format to this file's format")
    annotation = newest_annotation(record.get("annotations", record.get("completions")) or [], where)
    if annotation is None:
        return None
    text = task_text(data, where, opts.text_field)
    # other results (choices, relations, text areas) are not entities; hand-written files may leave out the type
    results = [r for r in annotation.get("result") or [] if isinstance(r, dict) and isinstance(r.get("value"), dict)]
    regions = [r["value"] for r in results if str(r.get("type", "labels")).lower() == "labels"]
    return text, [_region_span(value, text, where) for value in regions], data.get("tokens")


def newest_annotation(annotations: Sequence[Any], where: str) -> dict[str, Any] | None:
    """The annotation a task is trained from: not cancelled (or skipped), a ground truth before others, then the
    last updated (updated_at, else created_at; then the higher id); None when there is none."""
    kept = [a for a in annotations if isinstance(a, dict) and not (a.get("was_cancelled") or a.get("skipped"))]
    return max(kept, key=lambda a: (bool(a.get("ground_truth")), *_recency(a, where, "id")), default=None)


def _recency(annotation: Mapping[str, Any], where: str, id_key: str) -> tuple[float, float, float]:
    """(updated, created, id): larger is newer."""
    number = annotation.get(id_key)
    number = float(number) if isinstance(number, (int, float)) else float("-inf")
    return _when(annotation, where, "updated_at"), _when(annotation, where, "created_at"), number


def _when(annotation: Mapping[str, Any], where: str, key: str) -> float:
    value = annotation.get(key) or annotation.get("created_at")
    if isinstance(value, (int, float)):  # older Label Studio: seconds since the epoch
        return float(value)
    if not value:
        return float("-inf")
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise DataError(f"{where}: annotation {key}={value!r} is no ISO date; fix it or remove the key") from None


def _newest_min_rows(records: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """JSON-MIN has a row per annotation of a task: the newest row of each task id, in the place of its first."""
    place: dict[Any, int] = {}
    rows: list[tuple[str, Any]] = []
    for where, record in records:
        task = record.get("id") if isinstance(record, dict) else None
        if task is None or task not in place:
            place.setdefault(task, len(rows))
            rows.append((where, record))
        elif _recency(record, where, "annotation_id") > _recency(rows[place[task]][1], where, "annotation_id"):
            rows[place[task]] = (where, record)
    return rows


def _label_studio_min(record: dict[str, Any], where: str, opts: SpanOptions) -> tuple[str, list[Span], Any] | None:
    region_fields = [key for key, value in record.items() if _is_regions(value)]
    if not region_fields and record.get("annotation_id", 0) is None:  # exported without an annotation
        return None
    data = {k: v for k, v in record.items() if k not in _MIN_META and k not in region_fields}
    text = task_text(data, where, opts.text_field)
    return text, [_region_span(v, text, where) for key in region_fields for v in record[key]], data.get("tokens")


def _doccano(record: dict[str, Any], where: str, opts: SpanOptions) -> tuple[str, list[Span], Any]:
    text = record.get(opts.text_field or "text")
    if not isinstance(text, str):
        field = opts.text_field or "text"
        raise DataError(f"{where}: no string field {field!r} in the doccano line; set data.text_field=<field>")
    spans = []
    for item in record.get("entities") or record.get("label") or record.get("labels") or []:
        if isinstance(item, dict):
            item = [item.get("start_offset"), item.get("end_offset"), item.get("label")]
        if not (isinstance(item, list) and len(item) == 3):
            raise DataError(f"{where}: doccano label {item!r} is not [start, end, type]")
        spans.append(_checked_span(item[0], item[1], [item[2]], text, where))
    return text, spans, record.get("tokens")


def task_text(data: Mapping[str, Any], where: str, text_field: str | None = None) -> str:
    """The text of a task's data: `text_field`, else its one string field, else its field "text"."""
    if text_field is not None:
        if not isinstance(data.get(text_field), str):
            raise DataError(f"{where}: data.text_field={text_field!r} is no string field of the task {sorted(data)}")
        return data[text_field]
    strings = [key for key, value in data.items() if isinstance(value, str)]
    if len(strings) == 1:
        return data[strings[0]]
    if "text" in strings:
        return data["text"]
    raise DataError(
        f"{where}: cannot tell the task's text among its string fields {strings}; set data.text_field=<field>"
    )


def _region_span(value: Mapping[str, Any], text: str, where: str) -> Span:
    start, end, labels = value.get("start"), value.get("end"), value.get("labels")
    quoted = value.get("text")
    if isinstance(quoted, str) and isinstance(start, int) and isinstance(end, int) and text[start:end] != quoted:
        # Label Studio before 1.4 counted offsets in UTF-16 units (JavaScript's), so emoji shift them by one each
        start16, end16 = _from_utf16(text, start), _from_utf16(text, end)
        if start16 is None or end16 is None or text[start16:end16] != quoted:
            raise DataError(
                f"{where}: span [{start}:{end}] {quoted!r} does not match the task text there "
                f"({text[start:end]!r}); is the annotated field the text? set data.text_field"
            )
        start, end = start16, end16
    return _checked_span(start, end, labels, text, where)


def _from_utf16(text: str, units: int) -> int | None:
    count = 0
    for i, char in enumerate(text):
        if count >= units:
            return i if count == units else None
        count += 2 if ord(char) > 0xFFFF else 1
    return len(text) if count == units else None


def _checked_span(start: Any, end: Any, labels: Any, text: str, where: str) -> Span:
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(text)):
        raise DataError(f"{where}: span offsets [{start}:{end}] are not within the text ({len(text)} characters)")
    if not (isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str) and labels[0]):
        raise DataError(f"{where}: span [{start}:{end}] {text[start:end]!r} has labels {labels!r}; give it one")
    return Span(start, end, labels[0])


# ---- Character spans to word tags


def _words(text: str, tokens: Any, report: SpanReport, split: str = "punctuation") -> list[tuple[str, int, int]]:
    """(word, start, end): the task's own `tokens` where they spell the text, else the text split by the pre-tokenizer
    named `split`, the one raw text is split by at prediction (tasks written by `conll_to_label_studio` carry tokens
    it would split otherwise)."""
    words = None if tokens is None else _place_tokens(text, tokens)
    if tokens is not None and words is None:
        report.note("tokens_ignored")
    return pretokenizer(split)(text) if words is None else words


def _place_tokens(text: str, tokens: Any) -> list[tuple[str, int, int]] | None:
    """(token, start, end) where `tokens` spell `text` in order with only whitespace around them, else None."""
    if not (isinstance(tokens, list) and all(isinstance(token, str) for token in tokens)):
        return None
    words, pos = [], 0
    for token in tokens:
        if not text.startswith(token, pos):
            pos = len(text) - len(text[pos:].lstrip())  # past the whitespace between two tokens
            if not text.startswith(token, pos):
                return None
        words.append((token, pos, pos + len(token)))
        pos += len(token)
    return None if text[pos:].strip() else words


def tag_words(
    text: str,
    words: Sequence[tuple[str, int, int]],
    spans: Sequence[Span],
    where: str,
    opts: SpanOptions = SpanOptions(),
    report: SpanReport | None = None,
) -> list[str]:
    """The IOB2 tags of `words` (word, start, end) for character `spans` (`word_spans`; with overlap_policy=keep, the
    tags of the outermost)."""
    return outermost_tags(len(words), longest_first(word_spans(text, words, spans, where, opts, report)))


def word_spans(
    text: str,
    words: Sequence[tuple[str, int, int]],
    spans: Sequence[Span],
    where: str,
    opts: SpanOptions = SpanOptions(),
    report: SpanReport | None = None,
) -> list[tuple[str, int, int]]:
    """The (type, first word, end word) entities of `words` (word, start, end) for character `spans`, trimmed of
    whitespace; a span that cuts a word is snapped outward or refused, and spans that share a word are refused,
    resolved or all kept (`opts`); what was snapped or dropped is noted in `report`."""
    report = SpanReport() if report is None else report
    # a word's extent without the whitespace some corpora keep inside tokens ("MH17 ")
    cores = [(s + len(w) - len(w.lstrip()), e - len(w) + len(w.rstrip())) for w, s, e in words]
    chosen: dict[tuple[int, int, str], Span] = {}
    for span in spans:
        start, end = span.start, span.end
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        inside = [i for i, (s, e) in enumerate(cores) if _holds(start, end, s, e)]
        if not inside:
            report.note("empty", f"{where}: span [{span.start}:{span.end}] {text[span.start:span.end]!r}")
            continue
        solid = [i for i in inside if cores[i][0] < cores[i][1]]
        if cores[solid[0]][0] != start or cores[solid[-1]][1] != end:
            words_text = text[cores[solid[0]][0] : cores[solid[-1]][1]]
            problem = (f"{where}: span [{start}:{end}] {text[start:end]!r} ({span.label}) does not fall on word "
                       f"boundaries (the words: {words_text!r})")  # fmt: skip
            if opts.span_policy == "refuse":
                raise DataError(f"{problem}; fix the span, or set data.span_policy=snap to extend it to whole words")
            report.note("snapped", problem)
        key = (inside[0], inside[-1] + 1, span.label)
        if key in chosen:
            report.note("duplicates")
        chosen.setdefault(key, span)
    return [(label, first, stop) for first, stop, label in _without_overlaps(chosen, text, where, opts.overlap_policy, report)]


def _holds(start: int, end: int, word_start: int, word_end: int) -> bool:
    """Whether the span [start, end) holds a word: shares a character with it, or, for an empty word (BTC has some),
    has it strictly inside."""
    if word_start < word_end:
        return word_start < end and word_end > start
    return start < word_start < end


def _without_overlaps(
    chosen: dict[tuple[int, int, str], Span], text: str, where: str, policy: str, report: SpanReport
) -> list[tuple[int, int, str]]:
    """The (first word, stop, label) ranges to tag; spans sharing a word are refused, kept all, or the longest (or
    first) one is kept."""
    if policy == "keep":
        return sorted(chosen)
    if policy == "first":  # the span that starts first in the text; the longer of two that start together
        order = sorted(chosen, key=lambda k: (chosen[k].start, chosen[k].start - chosen[k].end))
    else:  # the most words; the first of two as long
        order = sorted(chosen, key=lambda k: (k[0] - k[1], chosen[k].start))
    kept: list[tuple[int, int, str]] = []
    for key in order:
        clash = next((k for k in kept if key[0] < k[1] and k[0] < key[1]), None)
        if clash is None:
            kept.append(key)
            continue
        a, b = chosen[clash], chosen[key]
        problem = (f"{where}: overlapping spans [{a.start}:{a.end}] {text[a.start:a.end]!r} ({a.label}) and "
                   f"[{b.start}:{b.end}] {text[b.start:b.end]!r} ({b.label})")  # fmt: skip
        if policy == "refuse":
            raise DataError(f"{problem}; fix one, or set data.overlap_policy=longest|first to keep one of them (keep: "
                            "both, as nested entities for head=span)")  # fmt: skip
        report.note("overlaps", problem)
    return kept


def _log_summary(source: str, report: SpanReport) -> None:
    counts, examples = report.counts, report.examples
    if counts["skipped"]:
        logger.warning("%s: skipped %d tasks without an annotation", source, counts["skipped"])
    if counts["tokens_ignored"]:
        logger.warning("%s: %d tasks' data.tokens do not spell their text: split into words instead",
                       source, counts["tokens_ignored"])  # fmt: skip
    if counts["duplicates"]:
        logger.info("%s: %d duplicate spans counted once", source, counts["duplicates"])
    what = {"snapped": "spans snapped outward to whole words", "empty": "spans of whitespace only ignored",
            "overlaps": "overlapping spans dropped (data.overlap_policy)"}  # fmt: skip
    for kind, text in what.items():
        if counts[kind]:
            logger.warning("%s: %d %s, e.g. %s", source, counts[kind], text, "; ".join(examples[kind]))
