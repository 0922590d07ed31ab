"""Self-contained HTML pages: the evaluation report (tables, confusion matrix, sentences with their errors marked and
filters) and the service's try-it page. Both draw entities with one inline script; nothing comes from the network."""

import html
import json
from collections.abc import Mapping
from typing import Any

from lit_ner.analysis import KINDS

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328}
body{margin:2rem auto;max-width:1150px;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
.muted{color:#59636e}table{border-collapse:collapse;margin:.6rem 0;font-variant-numeric:tabular-nums}
th,td{padding:.3rem .7rem;border-bottom:1px solid #e5e8eb;text-align:right}th{background:#f6f8fa;font-weight:600}
th:first-child,td:first-child{text-align:left}tr:hover td{background:#f6f8fa}
td.heat{text-align:center;min-width:3.2rem}td.heat small{display:block;opacity:.8;font-size:.75em}
.tables{display:flex;flex-wrap:wrap;gap:0 2.5rem}
mark{--bg:#eee;--fg:#555;background:var(--bg);border-radius:4px;padding:.05rem .25rem;margin:0 .1rem;line-height:2}
mark::after{content:attr(data-type);font-size:.68em;font-weight:600;color:var(--fg);margin-left:.3em}
.t-0{--bg:#dbeafe;--fg:#1d4ed8}.t-1{--bg:#dcfce7;--fg:#15803d}.t-2{--bg:#fef3c7;--fg:#b45309}
.t-3{--bg:#fce7f3;--fg:#be185d}.t-4{--bg:#ede9fe;--fg:#6d28d9}.t-5{--bg:#ccfbf1;--fg:#0f766e}
.t-6{--bg:#ffedd5;--fg:#c2410c}.t-7{--bg:#e0e7ff;--fg:#4338ca}.t-8{--bg:#f1f5f9;--fg:#334155}
.t-9{--bg:#fee2e2;--fg:#b91c1c}
.k-missed{outline:2px dashed #d1242f;background:#fff}.k-spurious{outline:2px dotted #d1242f}
.k-boundary{box-shadow:inset 0 -3px #e36209}.k-type{box-shadow:inset 0 -3px #8250df}
.k-boundary_and_type{box-shadow:inset 0 -3px #d1242f;outline:1px solid #d1242f}
.legend mark{line-height:2.2}
.filters{position:sticky;top:0;background:#fffe;padding:.6rem 0;border-bottom:1px solid #d0d7de;z-index:1}
select,button,textarea{font:inherit}select{margin-right:1rem}
.sentence{border:1px solid #d0d7de;border-radius:6px;margin:.7rem 0;padding:.4rem .8rem}
.sentence header{font-size:.85em;color:#59636e}.sides{display:grid;grid-template-columns:1fr 1fr;gap:1.2rem}
.sides h3{font-size:.75em;text-transform:uppercase;letter-spacing:.05em;color:#59636e;margin:.2rem 0}
textarea{width:100%;box-sizing:border-box;padding:.5rem}button{padding:.35rem 1rem;margin:.5rem 0}
#answer{border:1px solid #d0d7de;border-radius:6px;padding:.6rem .8rem;min-height:2rem;white-space:pre-wrap}
"""

# the one renderer of both pages: text with character spans, or words with word spans, into <mark>s
JS_MARKS = """
const TYPES = [];
function typeClass(type) {
  if (!TYPES.includes(type)) TYPES.push(type);
  return "t-" + (TYPES.indexOf(type) % 10);  // the palette's ten colours, in order of first sight
}
function markText(text, spans) {  // spans: {start, end (exclusive), type, kind?, score?}, character offsets
  // an entity inside another is marked inside its mark; one that crosses a mark would cut it in two and is left out
  const sorted = [...spans].sort((a, b) => a.start - b.start || b.end - a.end);
  function marked(from, to, inner) {  // text[from:to] with `inner` (spans within it, in order) marked
    const out = document.createElement("span");
    let at = from;
    for (let i = 0; i < inner.length; i++) {
      const s = inner[i], children = [];
      if (s.start < at) continue;
      for (; i + 1 < inner.length && inner[i + 1].start < s.end; i++)
        if (inner[i + 1].end <= s.end) children.push(inner[i + 1]);
      out.append(text.slice(at, s.start));
      const mark = document.createElement("mark");
      mark.append(...marked(s.start, s.end, children).childNodes);
      mark.className = typeClass(s.type) + (s.kind ? " k-" + s.kind : "");
      mark.dataset.type = s.type;
      if (s.kind) mark.dataset.kind = s.kind;
      if (s.score != null) mark.dataset.score = s.score.toFixed(3);
      mark.title = [s.type, s.kind, s.score != null ? "score " + s.score.toFixed(3) : null].filter(Boolean).join(" · ");
      out.append(mark);
      at = s.end;
    }
    out.append(text.slice(at, to));
    return out;
  }
  return marked(0, text.length, sorted);
}
function markWords(words, entities) {  // entities: {start, end} word indices (end exclusive), words joined by spaces
  const starts = [];
  let at = 0;
  for (const w of words) { starts.push(at); at += w.length + 1; }
  const spans = entities.map(e => ({...e, start: starts[e.start], end: starts[e.end - 1] + words[e.end - 1].length}));
  return markText(words.join(" "), spans);
}
"""

JS_REPORT = """
for (const t of JSON.parse(document.getElementById("types").textContent)) typeClass(t);
const records = JSON.parse(document.getElementById("records").textContent);
const list = document.getElementById("sentences");
for (const r of records) {
  const article = document.createElement("article");
  article.className = "sentence";
  article.dataset.sentence = r.sentence;
  article.dataset.errors = r.errors;
  const header = document.createElement("header");
  header.textContent = `sentence ${r.sentence} · ${r.errors} error${r.errors == 1 ? "" : "s"}`;
  const sides = document.createElement("div");
  sides.className = "sides";
  for (const [name, entities] of [["gold", r.gold], ["predicted", r.predicted]]) {
    const side = document.createElement("div");
    const title = document.createElement("h3");
    title.textContent = name;
    side.append(title, markWords(r.words, entities));
    sides.append(side);
  }
  article.append(header, sides);
  list.append(article);
}
const byType = document.getElementById("type"), byKind = document.getElementById("kind");
function applyFilter() {
  let shown = 0;
  for (const article of list.children) {
    const hit = [...article.querySelectorAll("mark")].some(m => m.dataset.kind != "correct"
      && (byType.value == "" || m.dataset.type == byType.value)
      && (byKind.value == "" || m.dataset.kind == byKind.value));
    article.hidden = !hit;
    shown += hit;
  }
  document.getElementById("shown").textContent = `${shown} of ${records.length} sentences shown`;
  const params = new URLSearchParams();
  if (byType.value) params.set("type", byType.value);
  if (byKind.value) params.set("kind", byKind.value);
  const query = params.toString();  // the address keeps the filter, so it can be shared or reloaded
  try { history.replaceState(null, "", query ? "#" + query : location.pathname + location.search); } catch {}
}
const asked = new URLSearchParams(location.hash.slice(1));  // report.html#type=PER&kind=missed opens filtered
for (const [select, key] of [[byType, "type"], [byKind, "kind"]])
  if ([...select.options].some(o => o.value == asked.get(key))) select.value = asked.get(key);
byType.onchange = byKind.onchange = applyFilter;
applyFilter();
"""

JS_SERVICE = """
document.getElementById("ask").onsubmit = async event => {
  event.preventDefault();
  const text = document.getElementById("text").value, answer = document.getElementById("answer");
  const status = document.getElementById("status");
  status.textContent = "asking…";
  try {
    const headers = {"Content-Type": "application/json"}, key = document.getElementById("key");
    if (key && key.value) headers["X-API-Key"] = key.value;
    const response = await fetch("/predict", {method: "POST", headers, body: JSON.stringify({text})});
    if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
    const {entities} = await response.json();
    answer.replaceChildren(markText(text, entities));
    status.textContent = `${entities.length} entit${entities.length == 1 ? "y" : "ies"}`;
  } catch (error) {
    status.textContent = "the service did not answer: " + error.message;
  }
};
const hash = new URLSearchParams(location.hash.slice(1));  // /#text=... opens with that text tagged
const given = hash.get("text");
if (hash.get("key") && document.getElementById("key")) document.getElementById("key").value = hash.get("key");
if (given) {
  document.getElementById("text").value = given;
  document.getElementById("ask").requestSubmit();
}
"""


def _page(title: str, body: str, script: str) -> str:
    head = '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
    head += f"<title>{html.escape(title)}</title><style>{CSS}</style>"
    scripts = f"<script>{JS_MARKS}{script}</script>"
    return f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head>\n<body>\n{body}\n{scripts}\n</body></html>\n'


def _json_script(name: str, data: Any) -> str:
    """Data for the page's script; <, > and & escaped so no text can close the script element."""
    text = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script id="{name}" type="application/json">{text}</script>'


def _cell(value: Any) -> str:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    return f"<td>{html.escape(text)}</td>"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    header = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(map(_cell, row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{''.join(parts)}</section>"


def _note(text: str) -> str:
    return f'<p class="muted">{html.escape(text)}</p>'


def _scores(report: Mapping[str, Any]) -> str:
    tables = []
    for mode, table in report.get("scores", {}).items():
        rows = [[t, s["precision"], s["recall"], s["f1"], s["support"]] for t, s in table.items()]
        table_html = _table(["type", "precision", "recall", "F1", "support"], rows)
        tables.append(f"<div><h3>{html.escape(mode)} mode</h3>{table_html}</div>")
    if "bootstrap" in report:
        rows = [[t, s["f1"], s["low"], s["high"]] for t, s in report["bootstrap"].items()]
        tables.append(f"<div><h3>bootstrap interval of F1</h3>{_table(['type', 'F1', 'low', 'high'], rows)}</div>")
    return _section("Entity scores", f'<div class="tables">{"".join(tables)}</div>') if tables else ""


def _semeval(semeval: Mapping[str, Any]) -> str:
    keys = ["correct", "incorrect", "partial", "missed", "spurious", "possible", "actual", "precision", "recall", "f1"]
    rows = [[scheme, *(s[k] for k in keys)] for scheme, s in semeval["overall"].items()]
    by_type = [[f"{t} {scheme}", *(s[k] for k in keys)] for t, schemes in semeval["by_type"].items()
               for scheme, s in schemes.items()]  # fmt: skip
    return _section(
        "SemEval-2013 schemes",
        _note("strict: span and type; exact: span; partial: overlap, half a point; ent_type: overlap and type."),
        _table(["scheme", *keys], rows),
        f"<details><summary>per type</summary>{_table(['type', *keys], by_type)}</details>",
    )


def _error_kinds(kinds: Mapping[str, Any]) -> str:
    rows = [[t, *(k[kind] for kind in KINDS), sum(k.values())] for t, k in kinds["by_type"].items()]
    rows.append(["all types", *(kinds["overall"][kind] for kind in KINDS), sum(kinds["overall"].values())])
    return _section("Kinds of error", _table(["type", *KINDS, "errors"], rows))


def _flat(data: Mapping[str, Any], prefix: str = "") -> list[list[Any]]:
    rows = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            rows += _flat(value, f"{prefix}{key} ")
        elif not isinstance(value, list):  # curves and bins belong in figures, not in a table
            rows.append([f"{prefix}{key}", value])
    return rows


def _confusion(confusion: Mapping[str, Any]) -> str:
    names, counts, overlap = confusion["labels"], confusion["counts"], confusion["overlap"]
    darkest = max((c for row in counts for c in row), default=0) or 1
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for name, row, overlaps in zip(names, counts, overlap):
        cells = "".join(
            f'<td class="heat" style="background:rgba(33,113,181,{0.85 * c / darkest:.2f});'
            f'color:{"#fff" if c > darkest / 2 else "inherit"}">{c}'
            + (f"<small>{o} overlap</small>" if o else "") + "</td>"
            for c, o in zip(row, overlaps)
        )
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    table = f"<table><thead><tr><th>gold \\ predicted</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    note = _note("Rows gold, columns predicted; none: missed or spurious.")
    return _section("Confusion of entity types", note, table)


def _legend() -> str:
    kinds = "".join(f'<mark class="t-8 k-{k}" data-type="">{html.escape(k.replace("_", " "))}</mark> '
                    for k in ("correct", *KINDS))  # fmt: skip
    return f'<p class="legend muted">Marks: {kinds}</p>'


def _sentences(records: list[dict[str, Any]], types: list[str]) -> str:
    options = "".join(f'<option value="{html.escape(t)}">{html.escape(t)}</option>' for t in types)
    kinds = "".join(f'<option value="{k}">{html.escape(k.replace("_", " "))}</option>' for k in KINDS)
    filters = (f'<div class="filters"><label>type <select id="type"><option value="">all</option>{options}</select>'
               f'</label><label>error <select id="kind"><option value="">any</option>{kinds}</select></label>'
               f'<span id="shown" class="muted"></span></div>')  # fmt: skip
    return _section(f"Sentences with errors ({len(records)}), most errors first", _legend(), filters,
                    '<noscript>The sentences need JavaScript.</noscript><div id="sentences"></div>')  # fmt: skip


def render_report(report: Mapping[str, Any], records: list[dict[str, Any]]) -> str:
    """The evaluation as one HTML page: the sections of `report` that are present (scores, bootstrap, semeval,
    error_kinds, calibration, confusion) and the error_records with filters; `#type=X&kind=Y` opens it filtered."""
    title = f"Evaluation of {report.get('model', 'a model')} on {report.get('split', 'a split')}"
    types = sorted({e["type"] for r in records for e in (*r["gold"], *r["predicted"])})
    summary = ", ".join(f"{report[k]} {k}" for k in ("sentences", "words") if k in report)
    parts = [f"<h1>{html.escape(title)}</h1>", _note(summary) if summary else "", _scores(report)]
    if "semeval" in report:
        parts.append(_semeval(report["semeval"]))
    if "error_kinds" in report:
        parts.append(_error_kinds(report["error_kinds"]))
    if "calibration" in report:
        parts.append(_section("Calibration", _table(["measure", "value"], _flat(report["calibration"]))))
    if "confusion" in report:
        parts.append(_confusion(report["confusion"]))
    parts += [_sentences(records, types), _json_script("types", types), _json_script("records", records)]
    return _page(title, "\n".join(parts), JS_REPORT)


def service_page(title: str, keyed: bool = False) -> str:
    """A page that sends its text box to POST /predict and marks the entities of the answer in the text; `keyed`: the
    service needs an API key, which the page asks for (or takes from `/#key=...`) and sends with each request."""
    key = '<input id="key" type="password" placeholder="API key" autocomplete="off"> ' if keyed else ""
    body = (f"<h1>{html.escape(title)}</h1>"
            f'<form id="ask">{key}<textarea id="text" name="text" rows="6" placeholder="Text to tag"></textarea>'
            '<button type="submit">Find entities</button> <span id="status" class="muted"></span></form>'
            '<div id="answer"></div>')  # fmt: skip
    return _page(title, body, JS_SERVICE)
