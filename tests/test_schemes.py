"""Tag schemes: detection, invalid transitions, conversion that keeps seqeval's entities, label lists."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from lit_ner.data.schemes import (
    build_labels,
    check_labels,
    convert_tags,
    detect_scheme,
    entity_spans,
    inspect_scheme,
    invalid_transitions,
    split_tag,
)
from lit_ner.errors import ConfigError, DataError

TYPES = ["PER", "creative-work"]
IOB_TAGS = ["O"] + [f"{p}-{t}" for p in "BI" for t in TYPES]
IOBES_TAGS = IOB_TAGS + [f"{p}-{t}" for p in "ES" for t in TYPES]


def seqeval_entities(tags):
    # seqeval's end index is inclusive; entity_spans' is exclusive.
    return [(t, s, e + 1) for t, s, e in get_entities(list(tags))]


def test_split_tag_keeps_hyphenated_types_and_bare_labels():
    assert split_tag("B-creative-work") == ("B", "creative-work")
    assert split_tag("O") == ("O", None)
    assert split_tag("AUTHOR") == ("", "AUTHOR")
    assert split_tag("creative-work") == ("", "creative-work")


@pytest.mark.parametrize(
    "sequences, scheme",
    [
        ([["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-PER", "B-PER"]], "IOB2"),
        ([["I-PER", "I-PER", "O", "I-LOC"], ["I-PER", "B-PER", "O"]], "IOB1"),
        ([["B-PER", "E-PER", "O", "S-LOC"], ["B-LOC", "I-LOC", "E-LOC"]], "IOBES"),
        ([["B-PER", "L-PER", "O", "U-LOC"], ["B-LOC", "I-LOC", "L-LOC"]], "BILOU"),
        ([["AUTHOR", "AUTHOR", "O", "DATE"], ["O", "DATE"]], "plain"),
        ([["O", "O"], []], "IOB2"),
    ],
)
def test_detect_scheme(sequences, scheme):
    assert detect_scheme(sequences) == scheme
    assert inspect_scheme(sequences).invalid == []


def test_mixed_data_picks_the_best_fit_and_reports_the_rest():
    sequences = [["B-PER", "I-PER", "O"], ["O", "I-LOC", "O"], ["B-LOC", "O"], ["S-PER"]]
    report = inspect_scheme(sequences)
    assert report.scheme == "IOB2"
    assert report.invalid == [(1, 1, "O", "I-LOC"), (3, 0, "O", "S-PER")]


def test_invalid_transitions_give_indices():
    assert invalid_transitions(["O", "I-PER", "I-PER", "B-LOC", "I-PER"], "IOB2") == [
        (1, "O", "I-PER"),
        (4, "B-LOC", "I-PER"),
    ]
    # An unfinished B- is reported at index len(tags), the end of the sentence.
    assert invalid_transitions(["S-PER", "B-LOC", "I-LOC"], "IOBES") == [(3, "I-LOC", "O")]
    assert invalid_transitions(["B-LOC", "O", "E-LOC"], "IOBES") == [(1, "B-LOC", "O"), (2, "O", "E-LOC")]
    assert invalid_transitions(["B-PER", "U-PER"], "BILOU") == [(1, "B-PER", "U-PER")]
    assert invalid_transitions(["O", "B-PER"], "IOB1") == [(1, "O", "B-PER")]
    assert invalid_transitions(["AUTHOR", "B-DATE", "DATE"], "plain") == [(1, "AUTHOR", "B-DATE")]
    assert invalid_transitions(["AUTHOR"], "IOB2") == [(0, "O", "AUTHOR")]


def test_unknown_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="IOB3"):
        convert_tags(["O"], "IOB3")
    with pytest.raises(ConfigError, match="BILOU"):
        convert_tags(["O"], "IOB2", target="BILOU")


def test_plain_runs_become_iob2_entities():
    tags = ["AUTHOR", "AUTHOR", "O", "DATE", "DATE", "AUTHOR", "O"]
    assert convert_tags(tags, "plain") == ["B-AUTHOR", "I-AUTHOR", "O", "B-DATE", "I-DATE", "B-AUTHOR", "O"]


def test_iob1_iobes_bilou_to_iob2():
    assert convert_tags(["I-PER", "I-PER", "B-PER", "O", "I-LOC"], "IOB1") == [
        "B-PER", "I-PER", "B-PER", "O", "B-LOC",
    ]
    assert convert_tags(["B-PER", "E-PER", "S-PER", "S-LOC"], "IOBES") == ["B-PER", "I-PER", "B-PER", "B-LOC"]
    assert convert_tags(["B-PER", "L-PER", "U-PER", "O"], "BILOU") == ["B-PER", "I-PER", "B-PER", "O"]
    assert convert_tags(["B-PER", "I-PER", "O", "B-LOC"], "IOB2", "IOBES") == ["B-PER", "E-PER", "O", "S-LOC"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(IOB_TAGS), max_size=12))
def test_iob1_to_iob2_keeps_seqeval_entities(tags):
    converted = convert_tags(tags, "IOB1")
    assert get_entities(converted) == get_entities(tags)
    assert invalid_transitions(converted, "IOB2") == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(IOBES_TAGS), max_size=12))
def test_any_tags_read_as_seqeval_reads_them(tags):
    assert entity_spans(tags) == seqeval_entities(tags)
    assert seqeval_entities(convert_tags(tags, "IOBES")) == seqeval_entities(tags)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(IOB_TAGS), max_size=12))
def test_iob2_to_iobes_and_back_is_identity(tags):
    iob2 = convert_tags(tags, "IOB1")  # a valid IOB2 sentence
    iobes = convert_tags(iob2, "IOB2", "IOBES")
    assert invalid_transitions(iobes, "IOBES") == []
    assert convert_tags(iobes, "IOBES") == iob2


def test_build_labels_order():
    sequences = [["AUTHOR", "O", "DATE"], ["B-creative-work", "I-creative-work"]]
    assert build_labels(sequences) == [
        "O", "B-AUTHOR", "I-AUTHOR", "B-DATE", "I-DATE", "B-creative-work", "I-creative-work",
    ]
    iobes = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    assert build_labels([["B-PER", "I-PER"]], scheme="IOBES") == iobes
    assert build_labels([["S-PER", "O"]]) == iobes  # IOBES tags give IOBES labels
    assert build_labels([["S-PER", "O"]], scheme="IOB2") == ["O", "B-PER", "I-PER"]


def test_build_labels_fixed_is_returned_as_is_but_needs_o():
    fixed = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert build_labels([["B-PER"]], fixed=fixed) == fixed
    with pytest.raises(ConfigError, match="data.labels"):
        build_labels([["B-PER"]], fixed=["B-PER", "I-PER"])


def test_tag_outside_fixed_labels_names_split_sentence_and_key():
    labels = ["O", "B-PER", "I-PER"]
    check_labels([["B-PER", "O"]], labels, where="train")
    with pytest.raises(DataError) as error:
        check_labels([["B-PER"], ["O", "B-MISC"]], labels, where="validation")
    message = str(error.value)
    for part in ("validation", "sentence 1", "'B-MISC'", "data.labels", "null"):
        assert part in message


TAGS = IOBES_TAGS + ["L-PER", "U-PER", "AUTHOR", "O", "O"]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(TAGS), max_size=9), min_size=1, max_size=60),
    st.integers(1, 7),
    st.data(),
)
def test_arrow_tag_checks_read_what_the_python_ones_read(sequences, block, data):
    """prepare_tags reads a split's tags in Arrow blocks (a corpus on disk is never a Python list): the counted
    transitions, the scheme and the first invalid ones are those a sentence-by-sentence reading finds, also on a
    selection of rows and across block edges."""
    from functools import partial

    from datasets import Dataset

    import lit_ner.data.datamodule as dm
    from lit_ner.data.schemes import SCHEMES, forbidden_pairs, scheme_of, transition_pairs

    split = Dataset.from_dict({"tags": sequences})
    rows = data.draw(st.lists(st.integers(0, len(sequences) - 1), max_size=20))
    blocks = dm._tag_blocks
    try:
        dm._tag_blocks = partial(blocks, block=block)
        for part, tags in ((split, sequences), (split.select(rows), [sequences[r] for r in rows])):
            counted = dm.transition_counts(part)
            assert counted == transition_pairs(tags)
            assert scheme_of(counted) == inspect_scheme(tags).scheme
            for scheme in SCHEMES:
                python = [(n, *t) for n, s in enumerate(tags) for t in invalid_transitions(s, scheme)]
                assert dm.first_transitions(part, forbidden_pairs(counted, scheme)) == python[:5]
    finally:
        dm._tag_blocks = blocks
