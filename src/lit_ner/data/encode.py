"""Tokenizer loading and sentence encoding: words and tags in, model rows (ids, labels, windows) out."""

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from transformers import AutoConfig, AutoTokenizer, PretrainedConfig, PreTrainedTokenizerBase

from lit_ner.data.align import Window, align_labels, fit_context, plan_windows
from lit_ner.data.schemes import entity_spans
from lit_ner.errors import ConfigError
from lit_ner.locations import WHAT_TO_GIVE, local_or_hub

# Byte-level BPE tokenizers glue a word to the one before it unless told that each
# pre-split word starts after a space (what `add_prefix_space` does).
BPE_MODEL_TYPES = {"roberta", "xlm-roberta", "deberta", "deberta-v2", "gpt2", "bloom", "longformer", "bart", "mpnet"}
# these number positions from after the padding index, so two of max_position_embeddings are never usable
OFFSET_POSITION_TYPES = {"roberta", "xlm-roberta", "camembert", "longformer"}


def position_limit(config: PretrainedConfig) -> int | None:
    """The longest row, in sub-tokens, the model can read; None when its config sets no limit."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit and config.model_type in OFFSET_POSITION_TYPES:
        limit -= 2
    return limit or None


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """Load a fast tokenizer; word-to-sub-token alignment (`word_ids`) needs one."""
    source = local_or_hub(name_or_path, "model.model_name_or_path")
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
        raise ConfigError(
            f"cannot load the model config of '{name_or_path}' (model.model_name_or_path): {reason}. {WHAT_TO_GIVE}"
        ) from None
    kwargs = {"add_prefix_space": True} if config.model_type in BPE_MODEL_TYPES else {}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        # transformers 5 builds an empty tokenizer from a folder without tokenizer files: every word would be [UNK]
        raise ConfigError(
            f"the tokenizer of '{name_or_path}' (model.model_name_or_path) has no vocabulary beyond its special "
            "tokens: the folder lacks its tokenizer files (tokenizer.json, vocab.txt, ...). Save them there with "
            "AutoTokenizer.from_pretrained(<the base model>).save_pretrained(<folder>)."
        )
    if not tokenizer.is_fast:
        raise ConfigError(
            f"the tokenizer of '{name_or_path}' (model.model_name_or_path) is a slow (Python) tokenizer: lit_ner "
            "needs a fast one to map sub-tokens to words. Save it with its fast class, which writes tokenizer.json "
            "(transformers 5: the class without 'Legacy', e.g. BertTokenizer.from_pretrained(<folder>)"
            ".save_pretrained(<folder>)), or pick a model that ships tokenizer.json."
        )
    return tokenizer


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a sentence ([CLS] / [SEP], <s> / </s>, ...)."""
    encoding = tokenizer(["a"], is_split_into_words=True)
    word_ids = encoding.word_ids()
    first = word_ids.index(0)
    last = len(word_ids) - 1 - word_ids[::-1].index(0)
    return encoding["input_ids"][:first], encoding["input_ids"][last + 1 :]


class Row(NamedTuple):
    """One model row: its token ids, the sentence word each token belongs to (None for special tokens; words of the
    document context fall outside the sentence's range), and the sentence words this row scores."""

    input_ids: list[int]
    word_ids: list[int | None]
    scored: range


def encode_rows(
    tokenizer: PreTrainedTokenizerBase,
    sentences: Sequence[Sequence[str]],
    max_length: int,
    window_context: int,
    context_words: tuple[Sequence[Sequence[str]], Sequence[Sequence[str]]] | None = None,
    context_tokens: int = 0,
) -> list[tuple[int, Row]]:
    """The model rows of sentences, as training and every reader of a trained model encode them: (position of the
    sentence in `sentences`, row), a sentence's rows consecutive and in order.

    A sentence longer than `max_length` gives several windows, each with up to `window_context` sub-tokens of its
    neighbouring words (`plan_windows`). With `context_words` (the words left and right of each sentence in its
    document, `neighbour_words`) and `context_tokens`, a sentence that fits is read between up to `context_tokens`
    sub-tokens of each side (`fit_context`); a sentence split into windows has its own context already.
    """
    prefix, suffix = special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    own = word_pieces(tokenizer, [list(words) for words in sentences], budget)
    with_context = context_words is not None and context_tokens > 0
    left = word_pieces(tokenizer, [list(w) for w in context_words[0]], budget) if with_context else None
    right = word_pieces(tokenizer, [list(w) for w in context_words[1]], budget) if with_context else None
    rows: list[tuple[int, Row]] = []
    for i, pieces in enumerate(own):
        windows = plan_windows([len(p) for p in pieces], budget, window_context)
        first_word = 0  # the sentence word of pieces[0]: negative when document context comes first
        if with_context and len(windows) == 1:
            n_left, n_right = fit_context(
                [len(p) for p in left[i]], [len(p) for p in right[i]], context_tokens, budget - sum(map(len, pieces))
            )
            pieces = left[i][len(left[i]) - n_left :] + pieces + right[i][:n_right]
            first_word = -n_left
            windows = [Window(0, len(pieces), n_left, len(pieces) - n_right)]
        for window in windows:
            ids, word_ids = list(prefix), [None] * len(prefix)
            for word in range(window.start, window.end):
                ids += pieces[word]
                word_ids += [word + first_word] * len(pieces[word])
            ids += suffix
            word_ids += [None] * len(suffix)
            rows.append((i, Row(ids, word_ids, range(window.score_start + first_word, window.score_end + first_word))))
    return rows


def encode_batch(
    batch: Mapping[str, list],
    indices: Sequence[int],
    tokenizer: PreTrainedTokenizerBase,
    label2id: Mapping[str, int],
    max_length: int,
    label_all_tokens: bool,
    context: int,
    context_tokens: int = 0,
) -> dict[str, list[Any]]:
    """Encode a batch of sentences into training rows (`encode_rows`); a sentence longer than `max_length` gives
    several rows.

    Columns: input_ids; labels (the label on each scored word's first sub-token, IGNORE elsewhere: the
    metric's target); all_labels (the training target when `label_all_tokens`); sentence (row in the
    source split); window (0 for a sentence's first row, so `window > 0` means "continues"); spans (the gold
    entities that lie within the row's scored words, as [first, end, id of the type's B- label] in those words:
    what a span head learns; a nested source's column `entities` gives them, else the tags); pieces (the sub-tokens
    of each scored word in the row: where a span's last word ends).
    With columns `left_context` / `right_context` (words of the neighbouring sentences, see `neighbour_words`), a
    sentence that fits is read between up to `context_tokens` sub-tokens of each, which are IGNORE like a window's.
    """
    b_to_i = {label2id[t]: label2id["I" + t[1:]] for t in label2id if t.startswith("B-") and "I" + t[1:] in label2id}
    context_words = (batch["left_context"], batch["right_context"]) if "left_context" in batch else None
    encoded = encode_rows(tokenizer, batch["tokens"], max_length, context, context_words, context_tokens)
    rows: dict[str, list[Any]] = {"input_ids": [], "labels": [], "all_labels": [], "sentence": [], "window": [],
                                  "spans": [], "pieces": []}  # fmt: skip
    tag_ids = [[label2id[t] for t in tags] for tags in batch["tags"]]
    if "entities" in batch:
        gold = [[(e["type"], e["start"], e["end"]) for e in sentence] for sentence in batch["entities"]]
    else:
        gold = [entity_spans(tags) for tags in batch["tags"]]
    previous = None
    for i, row in encoded:
        rows["input_ids"].append(row.input_ids)
        # context words are outside `scored`, so they are IGNORE and their (negative) ids never index the tags
        rows["labels"].append(align_labels(row.word_ids, tag_ids[i], False, None, row.scored))
        rows["all_labels"].append(
            align_labels(row.word_ids, tag_ids[i], True, b_to_i, row.scored) if label_all_tokens else []
        )
        rows["sentence"].append(indices[i])
        first, stop = row.scored.start, row.scored.stop
        rows["spans"].append([[s - first, e - first, label2id[f"B-{t}"]] for t, s, e in gold[i] if first <= s and e <= stop])
        rows["pieces"].append([row.word_ids.count(word) for word in row.scored])
        rows["window"].append(rows["window"][-1] + 1 if i == previous else 0)
        previous = i
    return rows


def word_pieces(tokenizer: PreTrainedTokenizerBase, sentences: list[list[str]], budget: int) -> list[list[list[int]]]:
    """The sub-token ids of each word of each sentence: at least one (an empty or unknown-character word becomes the
    unknown token, so it keeps its slot and is still scored), at most `budget`."""
    if not any(sentences):  # the tokenizer refuses a batch of empty word lists
        return [[] for _ in sentences]
    encoded = tokenizer(sentences, is_split_into_words=True, add_special_tokens=False)
    pieces: list[list[list[int]]] = [[[] for _ in words] for words in sentences]
    for i, words in enumerate(pieces):
        for token_id, word in zip(encoded["input_ids"][i], encoded.word_ids(i)):
            words[word].append(token_id)
        for word_pieces in words:
            if not word_pieces:
                word_pieces.append(tokenizer.unk_token_id)
            del word_pieces[budget:]  # a word longer than a window is labelled on its first piece anyway
    return pieces
