"""Tag schemes (IOB1, IOB2, IOBES, BILOU, plain): detecting a split's scheme, finding the
transitions it forbids, converting to IOB2 or IOBES, building or checking the label list, and
telling tags that are one tag typed otherwise ("0" for "O", "b-per" for "B-PER")."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from lit_ner.errors import ConfigError, DataError

SCHEMES = ("IOB1", "IOB2", "IOBES", "BILOU", "plain")
TARGETS = ("IOB2", "IOBES")

# A prefix is one of these letters and a hyphen; the type is everything after that hyphen,
# so "B-creative-work" has type "creative-work", as seqeval reads it.
_PREFIXED = re.compile(r"([BIESLU])-(.+)", re.DOTALL)
_ALLOWED = {
    "IOB1": {"O", "B", "I"},
    "IOB2": {"O", "B", "I"},
    "IOBES": {"O", "B", "I", "E", "S"},
    "BILOU": {"O", "B", "I", "L", "U"},
    "plain": {"O", ""},
}
# Detection picks the scheme with the fewest invalid transitions; on a tie (only possible
# when a split has no entities at all) the first one here wins.
_PREFERENCE = ("IOB2", "IOB1", "IOBES", "BILOU", "plain")


@lru_cache(maxsize=4096)
def split_tag(tag: str) -> tuple[str, str | None]:
    """Split a tag into (prefix, type).

    "B-creative-work" -> ("B", "creative-work"); "O" -> ("O", None); a bare label of plain
    data, "AUTHOR" -> ("", "AUTHOR"). Only B, I, E, S, L and U followed by a hyphen count as
    prefixes, so "creative-work" alone is a bare label too.
    """
    if tag == "O":
        return "O", None
    match = _PREFIXED.fullmatch(tag)
    return (match[1], match[2]) if match else ("", tag)


# a tag as people mistype it: a prefix in either case, joined by a hyphen or an underscore
_LOOSE = re.compile(r"([BIESLU])[-_](.+)", re.IGNORECASE | re.DOTALL)


def o_lookalikes(tags: Iterable[str]) -> list[str]:
    """The tags that are "O" typed otherwise ("0", "o", "O " with a stray space): read as they are, each would be an
    entity type of its own."""
    return sorted(tag for tag in set(tags) if tag != "O" and tag.strip().upper() in ("O", "0"))


def type_spellings(tags: Iterable[str]) -> list[dict[str, list[str]]]:
    """The entity types written several ways among `tags`: types that differ only in case, in a hyphen or an
    underscore, or in spaces around them ("B-PER", "b-per", "B_PER", "B-PER\\r"), which training would learn as
    several. Each group as {type as read: its tags}, the types and tags sorted."""
    tags = set(tags)
    groups: dict[str, dict[str, set[str]]] = {}
    for tag in tags - {"O", *o_lookalikes(tags)}:
        loose = _LOOSE.fullmatch(tag.strip())
        key = re.sub(r"[\s_-]+", "-", (loose[2] if loose else tag).strip()).upper()
        groups.setdefault(key, {}).setdefault(split_tag(tag)[1], set()).add(tag)
    return [{type_: sorted(found) for type_, found in sorted(group.items())}
            for _, group in sorted(groups.items()) if len(group) > 1]  # fmt: skip


def _check_scheme(scheme: str, allowed: Sequence[str]) -> None:
    if scheme not in allowed:
        raise ConfigError(f"Unknown tag scheme {scheme!r}; expected one of {', '.join(allowed)}.")


@lru_cache(maxsize=65536)
def _is_valid(previous: str, tag: str, scheme: str) -> bool:
    prev_prefix, prev_type = split_tag(previous)
    prefix, type_ = split_tag(tag)
    if prefix not in _ALLOWED[scheme]:
        return False
    continues = prev_prefix in ("B", "I") and prev_type == type_
    if scheme == "IOB2":
        return prefix != "I" or continues
    if scheme == "IOB1":
        # B- exists in IOB1 only to split two adjacent entities of the same type.
        return prefix != "B" or continues
    if scheme in ("IOBES", "BILOU"):
        # B- and I- promise a continuation (I-/E- or I-/L- of the same type), and only they
        # may be followed by one.
        inner = prefix in ("I", "E" if scheme == "IOBES" else "L")
        opened = prev_prefix in ("B", "I")
        return inner == opened and (not opened or continues)
    return True  # plain: any bare label or O may follow any other


def allowed(previous: str, tag: str, scheme: str) -> bool:
    """Whether `scheme` lets `tag` follow `previous` ("O" before a sentence's first word and after its last)."""
    _check_scheme(scheme, SCHEMES)
    return _is_valid(previous, tag, scheme)


def invalid_transitions(tags: Sequence[str], scheme: str) -> list[tuple[int, str, str]]:
    """The (index, previous tag, tag) pairs that `scheme` forbids in one sentence.

    The sentence is read as if padded with "O" on both sides: index 0 has previous tag "O",
    and index len(tags) with tag "O" stands for the end of the sentence (an IOBES B-X there
    is unfinished). Tags with a prefix the scheme lacks are invalid wherever they stand.
    """
    _check_scheme(scheme, SCHEMES)
    padded = ["O", *tags, "O"]
    return [
        (i, padded[i], padded[i + 1])
        for i in range(len(tags) + 1)
        if not _is_valid(padded[i], padded[i + 1], scheme)
    ]


@dataclass(frozen=True)
class SchemeReport:
    """A split's detected scheme and its invalid transitions as (sentence, index, previous, tag)."""

    scheme: str
    invalid: list[tuple[int, int, str, str]]


def inspect_scheme(sequences: Iterable[Sequence[str]]) -> SchemeReport:
    """Detect the scheme of a split's tag sequences and list the transitions it forbids.

    The scheme is the one under which the data has the fewest invalid transitions. On clean
    data that agrees with the prefix rules: plain has no prefixes, IOBES some E-/S-, BILOU
    some L-/U-, IOB1 some I- that opens an entity, else IOB2. On mixed data the best-fitting
    scheme wins and the rest shows up in `invalid`. A split with only "O" tags reads as IOB2.
    """
    sentences = [list(tags) for tags in sequences]
    scheme = detect_scheme(sentences)
    return SchemeReport(scheme, [(n, *t) for n, tags in enumerate(sentences) for t in invalid_transitions(tags, scheme)])


def transition_pairs(sequences: Iterable[Sequence[str]]) -> Counter[tuple[str, str]]:
    """Each (previous tag, tag) pair of the sentences counted, every sentence read as `invalid_transitions` reads
    it (an "O" before and after). A scheme's validity depends only on these pairs: `scheme_of` and `count_invalid`
    need nothing else, however large the corpus."""
    return Counter(pair for tags in sequences for pair in zip(["O", *tags], [*tags, "O"]))


def forbidden_pairs(pairs: Iterable[tuple[str, str]], scheme: str) -> set[tuple[str, str]]:
    """The (previous tag, tag) pairs among `pairs` that `scheme` forbids."""
    _check_scheme(scheme, SCHEMES)
    return {pair for pair in pairs if not _is_valid(*pair, scheme)}


def count_invalid(pairs: Mapping[tuple[str, str], int], scheme: str) -> int:
    """Invalid transitions under `scheme`, from the counted pairs (`transition_pairs`)."""
    return sum(pairs[pair] for pair in forbidden_pairs(pairs, scheme))


def scheme_of(pairs: Mapping[tuple[str, str], int]) -> str:
    """The scheme with the fewest invalid transitions among the counted pairs; see `inspect_scheme` for the rules."""
    return min(_PREFERENCE, key=lambda scheme: count_invalid(pairs, scheme))


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """The scheme of a split's tag sequences; see `inspect_scheme` for the rules. Counts pairs, a sentence at a
    time: memory does not grow with the corpus."""
    return scheme_of(transition_pairs(sequences))


def _reading(tag: str) -> tuple[str, str | None]:
    # Bare labels read as I-X, so a run of the same label is one entity (plain data), and
    # BILOU's L-/U- mean what IOBES's E-/S- mean.
    prefix, type_ = split_tag(tag)
    return {"": "I", "L": "E", "U": "S"}.get(prefix, prefix), type_


def entity_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The (type, start, end) of each entity, `end` exclusive, in any scheme.

    Chunks as seqeval's default mode (`get_entities`, suffix=False) does, so invalid
    transitions are read the way the metric reads them (an I-X after O opens an entity);
    bare labels read as I-X and BILOU's L-/U- as E-/S-.
    """
    spans: list[tuple[str, int, int]] = []
    start, prev_prefix, prev_type = 0, "O", None
    for i, tag in enumerate([*tags, "O"]):
        prefix, type_ = _reading(tag)
        ends = prev_prefix in ("E", "S") or (prev_prefix in ("B", "I") and prefix in ("B", "S", "O"))
        if ends or (prev_prefix != "O" and prev_type != type_):
            spans.append((prev_type, start, i))
        starts = prefix in ("B", "S") or (prev_prefix in ("E", "S", "O") and prefix in ("E", "I"))
        if starts or (prefix != "O" and prev_type != type_):
            start = i
        prev_prefix, prev_type = prefix, type_
    return spans


def outermost_tags(n_words: int, spans: Iterable[tuple[str, int, int]]) -> list[str]:
    """IOB2 tags of (type, start, end exclusive) spans that may nest or overlap: each laid, in the order given, where
    no span laid before it has a word (give the longest first for the outermost entities)."""
    tags = ["O"] * n_words
    for type_, start, end in spans:
        if all(tag == "O" for tag in tags[start:end]):
            tags[start:end] = [f"B-{type_}"] + [f"I-{type_}"] * (end - start - 1)
    return tags


def longest_first(spans: Iterable[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """Spans in the order `outermost_tags` lays the outermost first: the longest, then the earlier."""
    return sorted(spans, key=lambda span: (span[1] - span[2], span[1]))


def inside(span: tuple[str, int, int], spans: Sequence[tuple[str, int, int]]) -> bool:
    """Whether `span` sits inside another of `spans`: a longer one holds its words, or one of another type, first in
    sorted order, lies on the same words (so of two such, one counts as inside)."""
    t, s, e = span
    return any(o is not span and o[1] <= s and e <= o[2] and (o[2] - o[1] > e - s or o[0] < t) for o in spans)


def nested_count(spans: Sequence[tuple[str, int, int]]) -> int:
    """How many of a sentence's spans sit inside another (`inside`)."""
    return sum(inside(span, spans) for span in spans)


def convert_tags(tags: Sequence[str], source: str, target: str = "IOB2") -> list[str]:
    """Rewrite one sentence's tags from `source` (any of SCHEMES) into `target` (IOB2 or IOBES).

    The entities stay exactly those `entity_spans` reads (seqeval's), so IOB1's opening I-X
    becomes B-X, a plain run "DATE DATE" becomes "B-DATE I-DATE", E-/L- become I- and S-/U-
    become B-. Every scheme is read by the same rules, which is what keeps the entities
    intact whatever `source` says; `source` is checked, so a typo fails loudly.
    """
    _check_scheme(source, SCHEMES)
    _check_scheme(target, TARGETS)
    out = ["O"] * len(tags)
    for type_, start, end in entity_spans(tags):
        if target == "IOBES" and end - start == 1:
            out[start] = f"S-{type_}"
            continue
        out[start:end] = [f"B-{type_}"] + [f"I-{type_}"] * (end - start - 1)
        if target == "IOBES":
            out[end - 1] = f"E-{type_}"
    return out


def build_labels(
    sequences: Iterable[Sequence[str]], fixed: Sequence[str] | None = None, scheme: str | None = None
) -> list[str]:
    """The label list for training, in `scheme` (IOB2 or IOBES).

    Derived: "O", then for each entity type in sorted order its B-, I- (and E-, S- for IOBES)
    tags; the sequences may be in any scheme. `scheme=None` means IOBES if any tag has an
    E-, S-, L- or U- prefix (as tags converted to IOBES do), else IOB2. With `fixed` (the
    config's `data.labels`) given, it is returned as is once it holds "O" and no duplicates.
    """
    if fixed is not None:
        labels = list(fixed)
        if "O" not in labels or len(set(labels)) != len(labels):
            raise ConfigError(
                f"data.labels must list each label once and include 'O'; got {labels}. "
                "Fix the list, or set data.labels to null to derive it from the data."
            )
        return labels
    parts = {split_tag(tag) for tags in sequences for tag in tags}
    if scheme is None:
        scheme = "IOBES" if any(prefix in ("E", "S", "L", "U") for prefix, _ in parts) else "IOB2"
    _check_scheme(scheme, TARGETS)
    types = sorted({type_ for _, type_ in parts if type_ is not None})
    prefixes = ("B", "I", "E", "S") if scheme == "IOBES" else ("B", "I")
    return ["O", *(f"{prefix}-{type_}" for type_ in types for prefix in prefixes)]


def entity_types(labels: Iterable[str]) -> list[str]:
    """The entity types of a label list, sorted: the order every per-type table and a span head's classes follow."""
    return sorted({type_ for _, type_ in map(split_tag, labels)} - {None})


def check_labels(sequences: Iterable[Sequence[str]], labels: Sequence[str], where: str) -> None:
    """Raise DataError if a tag of `sequences` (the split named `where`) is not in `labels`."""
    known = set(labels)
    unknown: dict[str, int] = {}  # tag -> first sentence that has it
    for n, tags in enumerate(sequences):
        for tag in tags:
            if tag not in known and tag not in unknown:
                unknown[tag] = n
    if unknown:
        tag, n = next(iter(unknown.items()))
        others = f" ({len(unknown) - 1} more unknown tags: {sorted(unknown)[:10]})" if len(unknown) > 1 else ""
        raise DataError(
            f"{where}: sentence {n} has tag {tag!r}, which is not in data.labels {list(labels)}{others}. "
            "Add it to data.labels, or set data.labels to null to derive the list from the data."
        )
