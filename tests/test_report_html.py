"""lit_ner.report_html: the pages as a real headless Chromium renders them (skipped, saying why, without one)."""

import json
import re
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lit_ner.analysis import bootstrap_f1, error_kinds, error_records, semeval_scores
from lit_ner.data.schemes import entity_spans
from lit_ner.report_html import render_report, service_page

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
NASTY = '</script><b id="injected">&amp;</b>'  # a word that must stay text

TOKENS = [
    ["Alan", "Walker", "wrote", "in", "London", "for", "Acme", "Corp", NASTY],
    ["Mary", "met", "Bob", "in", "Paris"],
    ["IBM", "hired", "Ann", "Lee"],
]
GOLD = [
    ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "B-ORG", "I-ORG", "O"],
    ["B-PER", "O", "B-PER", "O", "B-LOC"],
    ["B-ORG", "O", "B-PER", "I-PER"],
]
PRED = [
    ["B-PER", "O", "O", "O", "B-ORG", "O", "B-ORG", "I-ORG", "B-MISC"],
    ["B-PER", "O", "O", "O", "B-LOC"],
    ["B-ORG", "O", "B-PER", "I-PER"],
]


class Elements(HTMLParser):
    """The marks (attributes, their text and how deep each sits inside others) and the sentences (attributes) of a
    page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.marks: list[dict] = []
        self.sentences: list[dict] = []
        self.ids: set[str] = set()
        self._open: list[dict] = []  # the marks the parser is inside, outermost first
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.ids.add(attrs.get("id"))
        if tag == "mark":
            self._open.append(attrs | {"text": "", "depth": len(self._open)})
            self.marks.append(self._open[-1])
        elif tag == "article":
            self.sentences.append(attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for mark in self._open:  # an inner mark's text is its outer marks' too
            mark["text"] += data


def chromium(tmp_path: Path, *args: str) -> str:
    """Chromium's stdout after a headless run on its own profile, offline."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    done = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def spans(tags: list[list[str]]) -> list[list[tuple[str, int, int]]]:
    return [entity_spans(sentence) for sentence in tags]


def dom(tmp_path: Path, url: str) -> Elements:
    return Elements(chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", url))


@pytest.fixture
def report_file(tmp_path: Path) -> tuple[Path, list[dict]]:
    gold, pred = spans(GOLD), spans(PRED)
    records = error_records(TOKENS, gold, pred, scores=[[0.9, 0.6, 0.8, 0.4], [0.95, 0.7], [0.9, 0.9]])
    report = {
        "model": "runs/<b>bold</b>/model", "split": "test", "sentences": 3, "words": 18,
        "scores": {"default": {"PER": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 4}}},
        "semeval": semeval_scores(gold, pred), "error_kinds": error_kinds(gold, pred),
        "bootstrap": bootstrap_f1(gold, pred, samples=50), "calibration": {"temperature": 1.3, "ece": {"before": 0.1}},
        "confusion": {"labels": ["LOC", "none"], "counts": [[1, 2], [3, 0]], "overlap": [[1, 0], [0, 0]]},
    }  # fmt: skip
    path = tmp_path / "report.html"
    path.write_text(render_report(report, records), encoding="utf-8")
    return path, records


def test_the_report_is_one_file_with_every_text_escaped(report_file: tuple[Path, list[dict]]) -> None:
    path, records = report_file
    page = path.read_text(encoding="utf-8")
    assert not re.search(r"<link|\ssrc=|\shref=|@import|url\(", page)  # nothing to fetch
    assert "runs/&lt;b&gt;bold&lt;/b&gt;/model" in page and "<b>bold" not in page and NASTY not in page
    data = re.search(r'<script id="records" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(data) == records
    for heading in ("Entity scores", "SemEval-2013 schemes", "Kinds of error", "Calibration", "Confusion"):
        assert f"<h2>{heading}" in page


@needs_chromium
def test_the_browser_marks_every_entity_with_its_type_and_kind(tmp_path: Path, report_file) -> None:
    path, records = report_file
    page = dom(tmp_path, path.as_uri())
    marks = [m for m in page.marks if m.get("data-kind")]  # the legend's marks name no kind
    expected = [(e["type"], e["kind"], e["text"]) for r in records for e in (*r["gold"], *r["predicted"])]
    assert Counter((m["data-type"], m["data-kind"], m["text"]) for m in marks) == Counter(expected)
    assert all(re.fullmatch(rf"t-\d k-{m['data-kind']}", m["class"]) for m in marks)
    assert {m["data-score"] for m in marks if m["data-type"] == "MISC"} == {"0.400"}
    assert "injected" not in page.ids  # the word stayed text
    assert [s["data-sentence"] for s in page.sentences] == ["0", "1"] and not any("hidden" in s for s in page.sentences)


@needs_chromium
@pytest.mark.parametrize(("fragment", "shown"), [("type=MISC", ["0"]), ("kind=missed", ["1"]),
                                                 ("type=PER&kind=boundary", ["0"]), ("type=ORG", ["0"])])  # fmt: skip
def test_a_filter_in_the_address_hides_the_other_sentences(tmp_path: Path, report_file, fragment, shown) -> None:
    path, _ = report_file
    page = dom(tmp_path, f"{path.as_uri()}#{fragment}")
    assert [s["data-sentence"] for s in page.sentences if "hidden" not in s] == shown
    assert len(page.sentences) == 2


@needs_chromium
def test_a_screenshot_of_the_report(tmp_path: Path, report_file) -> None:
    path, _ = report_file
    png = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1200,900", path.as_uri())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


@needs_chromium
def test_the_service_page_has_its_form_and_marks_character_spans(tmp_path: Path) -> None:
    page = service_page("lit_ner <demo>")
    assert "<title>lit_ner &lt;demo&gt;</title>" in page
    # what the page does with an answer of /predict, without a server: the same renderer on character offsets
    answer = ('<script>document.getElementById("answer").replaceChildren(markText("Ann Lee lives in Paris.", '
              '[{"text": "Paris", "type": "LOC", "start": 17, "end": 22, "score": 0.97},'
              ' {"text": "Ann Lee", "type": "PER", "start": 0, "end": 7, "score": 0.91}]))</script>')  # fmt: skip
    path = tmp_path / "service.html"
    path.write_text(page.replace("</body>", answer + "</body>"), encoding="utf-8")
    rendered = dom(tmp_path, path.as_uri())
    assert {"ask", "text", "answer", "status"} <= rendered.ids
    assert '<button type="submit">' in page and 'fetch("/predict"' in page
    marks = [(m["data-type"], m["text"], m["data-score"]) for m in rendered.marks]
    assert marks == [("PER", "Ann Lee", "0.910"), ("LOC", "Paris", "0.970")]


@needs_chromium
def test_an_entity_inside_another_is_marked_inside_its_mark(tmp_path: Path) -> None:
    # a span head's nested entities: the place inside the organisation's name, and a crossing span left out
    spans = [{"type": "LOC", "start": 12, "end": 17}, {"type": "ORG", "start": 4, "end": 17},
             {"type": "MISC", "start": 4, "end": 8}, {"type": "PER", "start": 15, "end": 24}]
    answer = (f'<script>document.getElementById("answer").replaceChildren(markText("the Bank of Paris opened", '
              f"{json.dumps(spans)}))</script>")
    path = tmp_path / "service.html"
    path.write_text(service_page("nested").replace("</body>", answer + "</body>"), encoding="utf-8")
    marks = [(m["data-type"], m["text"], m["depth"]) for m in dom(tmp_path, path.as_uri()).marks]
    assert marks == [("ORG", "Bank of Paris", 0), ("MISC", "Bank", 1), ("LOC", "Paris", 1)]
