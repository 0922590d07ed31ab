"""The offline quickstart corpus: English and German sentences about books (and paintings, music,
films), tagged with plain AUTHOR and DATE labels, generated reproducibly from a seed."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from string import Formatter

import datasets
from faker import Faker

from lit_ner.data.words import split_words
from lit_ner.errors import ConfigError

# One template a line. {slot} is filled per sentence (a slot used twice gets the same text);
# [a|b|c] picks one alternative first, and alternatives may hold slots. Slots named author*
# are tagged AUTHOR and year* DATE; everything else (titles, other people, page counts,
# prices, editions) is O. Other people appear only where their role is plainly not author.
_ENGLISH = """\
{author} published {title} in {year}.
{title}, the [first|second|third|last|best-known] [novel|book|play] by {author}, came out in {year}.
In {year}, {author} [wrote|finished|completed|published] [a|her|his] [novel|memoir|short novel|collection of poems|book of essays] called {title}.
{author}'s [vibrant|haunting|quiet|luminous|dark|tender|bold] [self-portraits|landscapes|still lifes|portraits|seascapes|watercolours], [painted|made|finished] in {year}, [express|reveal|capture|convey] [her|his] [tumultuous inner world|restless mind|love of the sea|fear of loss|fascination with light].
{author}'s [debut|second|latest|final] [novel|collection|memoir|poetry collection], {title}, was [published|released|printed] in {year}.
The [symphony|string quartet|opera|piano sonata|song cycle] was [composed|written] by {author} in {year}.
{author} composed [the|a] [symphony|string quartet|opera|piano concerto|mass] in {year}[| and revised it in {year2}].
{author}'s [film|documentary|short film] {title} premiered in {year}.
The [film|documentary] {title}, directed by {author}, [opened|premiered] in {year}.
{title} ({year}) is [a|the] [novel|memoir|play|travelogue] by {author}.
{author}, {title}. {city}: {publisher}, {year}.
{title} by {author} has {pages} pages.
I [just finished|am reading|finally read|loved] {title} by {author}.
Have you read anything by {author}?
[My book club|Our reading group|The class] is discussing {author}'s {title} this [week|month].
{author} is best known for [her|his] [novels|poems|short stories|essays|paintings|film scores].
[Critics|Readers|Reviewers] [praised|criticised|loved|dismissed] {author}'s [new|latest|first] [book|novel|album|exhibition].
The library owns {n} copies of {title}.
{title} costs {price} in paperback.
The {ordinal} edition of {title} has {pages} pages and {n} illustrations.
This [anthology|boxed set|collected edition] comes in {n} volumes and costs {price}.
The [book|novel|memoir] sold {copies} copies in its first year.
{title} was first printed in {year}.
The [manuscript|first draft|letter] is dated {year}.
In {year}, the [printing house|publisher|bookshop] in {city} [closed|opened|burned down].
The [painting|portrait|fresco|etching] dates from {year} and hangs in {city}.
The [novel|book|story] is set in {city} in {year}.
A new translation of {title} appeared in {year}, {n} years after the original.
{author} was born in {city} in {year}.
{author} ({year}–{year2}) was a [poet|novelist|painter|composer|playwright].
Between {year} and {year2}, {author} wrote {n} [novels|plays|books].
{author} spent {n} years writing {title}.
The {ordinal} edition of {author}'s {title} appeared in {year}.
[Signed|Rare|First] editions of {author}'s [novels|poems|books] [sell|go] for {price} or more.
{author} and {author2} [co-wrote|wrote] {title} in {year}.
The [gallery|museum] bought {n} paintings by {author} in {year}.
{author} [photographed|painted|drew|sketched] the [harbour|cathedral|old bridge|market square] of {city} in {year}.
[Chapter|Part] {n} of {title} was [rewritten|cut|added] in {year}.
The [reading|signing|lecture] [with|by] {author} starts at {n} o'clock.
{author} won the [national book prize|poetry medal|Booker Prize|Prix Goncourt] in {year} for {title}.
[My grandmother|My neighbour|Our teacher|My friend] {person} [lent|gave|recommended] me {author}'s {title}.
{title} was a gift from [my aunt|my uncle|my colleague] {person}.
{author} dedicated {title} to [her|his] [daughter|son|wife|husband|editor] {person}.
{n} volumes, {pages} pages in total, for {price}.
Page {pages} of {title} [describes|mentions] a [storm|wedding|journey] in {year}.
{title} is {author}'s [longest|shortest|most famous|least known] [book|novel|work], at {pages} pages.
The album {title} was recorded by {author} in {year}.
[Published|Written|Completed|Painted] in {year}, [the|this] [work|book|canvas|novel] made {author} famous.
Sales of {author}'s books [doubled|tripled|fell] after {year}.
{year}: {author} [publishes|finishes|abandons] {title}.
Readers still argue about the ending of {title}."""

_GERMAN = """\
{author} veröffentlichte {title} im Jahr {year}.
Der Roman {title} von {author} erschien {year} [in {city}|bei {publisher}].
{year} schrieb {author} [den Roman|die Novelle|das Theaterstück|die Erzählung] {title}.
Die [Gemälde|Selbstporträts|Landschaften|Zeichnungen] von {author}, [entstanden|gemalt] um {year}, zeigen [ihre|seine] [innere Unruhe|Liebe zum Meer|Angst vor dem Verlust].
{author} komponierte die [Sinfonie|Oper|Messe|Klaviersonate] im Jahr {year}.
Das Buch hat {pages} Seiten und kostet {price}.
Die {ordinal} Auflage von {title} erschien {year}.
Ich lese gerade {title} von {author}.
Kennst du [Bücher|Gedichte|Romane] von {author}?
{title} ist ein [Roman|Gedichtband|Essay|Film] von {author} aus dem Jahr {year}.
Der Film {title} von {author} kam {year} in die Kinos.
Die Bibliothek besitzt {n} Exemplare von {title}.
Die Gesamtausgabe umfasst {n} Bände mit insgesamt {pages} Seiten.
Im Jahr {year} wurde {title} zum ersten Mal gedruckt.
{author} ({year}–{year2}) war [eine Dichterin|ein Dichter|ein Maler|eine Malerin|ein Komponist|eine Schriftstellerin].
Zwischen {year} und {year2} schrieb {author} {n} Romane.
Das Gemälde stammt aus dem Jahr {year} und hängt in {city}.
{author} erhielt {year} den [Büchner-Preis|Kleist-Preis|Literaturpreis der Stadt {city}] für {title}.
Meine [Großmutter|Nachbarin|Lehrerin] {person} hat mir {title} von {author} geschenkt.
{author} widmete {title} [seiner Tochter|seinem Sohn|ihrer Schwester|ihrem Verleger] {person}.
Der Verlag verkaufte {copies} Exemplare des Romans.
Die Erstausgabe von {title} kostet heute {price}.
{year}: {author} [beendet|veröffentlicht] {title}.
Von {author} stammen [zahlreiche Gedichte|drei Romane|viele Hörspiele].
Das Album {title} nahm {author} {year} in {city} auf.
[Geschrieben|Vollendet|Gemalt] im Jahr {year}, machte [das Werk|der Roman|das Bild] {author} berühmt."""

_TEMPLATES = {"en": _ENGLISH.splitlines(), "de": _GERMAN.splitlines()}
_CHOICE = re.compile(r"\[([^\[\]]*)\]")
_LABELS = {"author": "AUTHOR", "year": "DATE"}

# Name locales and their weights; German sentences draw from the German-speaking ones more often.
_LOCALES = {"en_US": 5, "en_GB": 4, "de_DE": 4, "fr_FR": 2, "it_IT": 2, "es_ES": 2, "nl_NL": 2,
            "pl_PL": 1, "sv_SE": 1, "da_DK": 1, "pt_PT": 1, "cs_CZ": 1, "de_AT": 1}
_GERMAN_LOCALES = ("de_DE", "de_AT")

_WORDS = {
    "en_adj": "Silent Last Hidden Broken Golden Distant Quiet Burning Forgotten Winter Lonely Long "
              "Bitter Painted Wild Crimson Empty Secret Northern Glass",
    "en_noun": "River Garden House Harbour Letter Mirror Orchard Island Summer Road Lantern Bridge "
               "Shore Forest Room Season Voyage Clock Window Kingdom",
    "de_adj": "stille dunkle leise alte letzte fremde lange kalte weiße blaue grüne verlorene stumme "
              "helle ferne wilde",
    "de_noun": "Der_Fluss Der_Garten Der_Sommer Der_Brief Der_Spiegel Der_Hafen Die_Stadt Die_Insel "
               "Die_Reise Die_Brücke Die_Stunde Das_Haus Das_Zimmer Das_Fenster Das_Land Das_Meer",
    "de_place": "See Meer Fluss Waldrand Hafen Berg",
    "en_city": "London Paris Vienna Berlin Leipzig Zurich Rome Madrid Amsterdam Dublin Edinburgh "
               "Boston Prague Lisbon Hamburg Munich Oslo Lyon Venice Krakow",
    "de_city": "Wien München Zürich Rom Prag Lissabon Köln Berlin Hamburg Leipzig Dresden Paris London",
    "publisher": "Penguin Faber Vintage Picador Reclam Suhrkamp Gallimard Hanser Knopf Fischer",
}
_WORDS = {key: [word.replace("_", " ") for word in value.split()] for key, value in _WORDS.items()}


@dataclass
class _Filler:
    """Fills one sentence's slots; every draw comes from `rng` or the seeded fakers."""

    rng: random.Random
    fakers: dict[str, Faker]

    def render(self, template: str, lang: str) -> tuple[str, list[tuple[int, int, str]]]:
        """The sentence and the (start, end, label) character span of each AUTHOR and DATE fill."""
        text = _CHOICE.sub(lambda match: self.rng.choice(match[1].split("|")), template)
        parts: list[str] = []
        spans: list[tuple[int, int, str]] = []
        fills: dict[str, str] = {}
        position = 0
        for literal, slot, _, _ in Formatter().parse(text):
            parts.append(literal)
            position += len(literal)
            if slot is None:
                continue
            if slot not in fills:
                fills[slot] = self.fill(slot, lang, fills)
            value = fills[slot]
            label = _LABELS.get(slot.rstrip("0123456789"))
            if label:
                spans.append((position, position + len(value), label))
            parts.append(value)
            position += len(value)
        return "".join(parts), spans

    def fill(self, slot: str, lang: str, fills: dict[str, str]) -> str:
        """The text for one slot; `fills` holds the slots this sentence already has."""
        rng = self.rng
        if slot.startswith("author"):
            return self.name(lang)
        if slot == "person":
            return self.name(lang) if rng.random() < 0.6 else self.faker(lang).first_name()
        if slot == "year":
            return str(round(rng.triangular(1500, 2025, 1950)))
        if slot == "year2":  # the end of a range, so after {year}
            if "year" not in fills:
                fills["year"] = self.fill("year", lang, fills)
            return str(min(2025, int(fills["year"]) + rng.randint(1, 40)))
        if slot == "title":
            return self.title(lang)
        if slot in ("city", "publisher"):
            return rng.choice(_WORDS[f"{lang}_city" if slot == "city" else slot])
        if slot == "pages":
            return str(rng.randint(48, 990))  # below 1000, so never read as a year
        if slot == "n":
            return str(rng.randint(2, 12))
        if slot == "ordinal":
            n = rng.randint(2, 12)
            return f"{n}." if lang == "de" else f"{n}{({2: 'nd', 3: 'rd'}).get(n, 'th')}"
        if slot == "copies":
            copies = f"{rng.randint(2, 900) * 1000:,}"
            return copies.replace(",", ".") if lang == "de" else copies
        if slot == "price":
            euros, cents = rng.randint(5, 80), rng.choice(["00", "50", "95", "99"])
            if lang == "de":
                return f"{euros},{cents} {rng.choice(['€', 'Euro'])}"
            return f"{rng.choice('$£€')}{euros}.{cents}"
        raise KeyError(f"template slot {{{slot}}} has no filler")

    def faker(self, lang: str) -> Faker:
        if lang == "de" and self.rng.random() < 0.5:
            return self.fakers[self.rng.choice(_GERMAN_LOCALES)]
        return self.fakers[self.rng.choices(list(_LOCALES), weights=list(_LOCALES.values()))[0]]

    def name(self, lang: str) -> str:
        """A first and last name, sometimes with initials or a middle name: "J. R. Moss", "Anna Maria Rossi"."""
        fake = self.faker(lang)
        first, last, style = fake.first_name(), fake.last_name(), self.rng.random()
        if style < 0.12:
            first = f"{first[0]}."
        elif style < 0.18:
            first = f"{first[0]}. {fake.first_name()[0]}."
        elif style < 0.30:
            first = f"{first} {fake.first_name()}"
        elif style < 0.36:
            first = f"{first} {fake.first_name()[0]}."
        return f"{first} {last}"

    def title(self, lang: str) -> str:
        """A made-up title, sometimes quoted; titles hold no names or numbers, so they are all O."""
        rng, words = self.rng, _WORDS
        if lang == "de":
            article, noun = rng.choice(words["de_noun"]).split()
            title = (f"{article} {rng.choice(words['de_adj'])} {noun}" if rng.random() < 0.7
                     else f"{article} {noun} am {rng.choice(words['de_place'])}")
            return f"„{title}“" if rng.random() < 0.35 else title
        adj, noun, other = rng.choice(words["en_adj"]), *rng.sample(words["en_noun"], 2)
        article = "An" if noun[0] in "AEIOU" else "A"
        title = rng.choice([f"The {adj} {noun}", f"{noun} of {other}s", f"The {noun} and the {other}",
                            f"{article} {noun} in {rng.choice(words['en_city'])}", f"{adj} {noun}s"])
        return f'"{title}"' if rng.random() < 0.35 else title


def _tag(text: str, spans: list[tuple[int, int, str]]) -> dict[str, list[str]]:
    """Split `text` into words and tag each by the slot span that holds it (never by matching strings)."""
    tokens, tags = [], []
    for word, start, end in split_words(text):
        label = "O"
        for span_start, span_end, span_label in spans:
            if start < span_end and span_start < end:
                # A word crossing a slot's edge would be half tagged: a template bug, not data.
                if not (span_start <= start and end <= span_end):
                    raise RuntimeError(f"word {word!r} crosses the edge of a {span_label} slot in {text!r}")
                label = span_label
        tokens.append(word)
        tags.append(label)
    return {"tokens": tokens, "tags": tags}


def make_book_corpus(
    num_sentences: int = 3000, seed: int = 0, validation_fraction: float = 0.1, test_fraction: float = 0.1
) -> datasets.DatasetDict:
    """Generate `num_sentences` unique sentences (about 70% English, 30% German) and split them
    into train/validation/test, with columns tokens, tags (plain "AUTHOR", "DATE", "O") and document (each sentence
    its own)."""
    if not (0 <= validation_fraction and 0 <= test_fraction and validation_fraction + test_fraction < 1):
        raise ConfigError(
            f"validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) must be "
            "at least 0 and leave some sentences for training"
        )
    fakers = {locale: Faker(locale) for locale in _LOCALES}
    for locale, fake in fakers.items():
        fake.seed_instance(f"{seed}:{locale}")  # per instance, so Faker's global state is left alone
    rng = random.Random(seed)
    filler = _Filler(rng, fakers)
    rows, seen, attempts = [], set(), 0
    while len(rows) < num_sentences:
        attempts += 1
        lang = "de" if rng.random() < 0.3 else "en"
        text, spans = filler.render(rng.choice(_TEMPLATES[lang]), lang)
        # Unique while that is cheap; a huge corpus may have to repeat a few short sentences.
        if text in seen and attempts < 20 * num_sentences:
            continue
        seen.add(text)
        rows.append(_tag(text, spans))
    n_validation = round(num_sentences * validation_fraction)
    n_test = round(num_sentences * test_fraction)
    n_train = num_sentences - n_validation - n_test
    features = datasets.Features(
        {"tokens": datasets.List(datasets.Value("string")), "tags": datasets.List(datasets.Value("string")),
         "document": datasets.Value("int64")}
    )  # fmt: skip
    splits = {
        "train": rows[:n_train],
        "validation": rows[n_train : n_train + n_validation],
        "test": rows[n_train + n_validation :],
    }
    return datasets.DatasetDict(
        {
            name: datasets.Dataset.from_list([row | {"document": i} for i, row in enumerate(split)], features=features)
            for name, split in splits.items()
        }
    )
