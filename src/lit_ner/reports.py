"""Scores as people read them: markdown tables of per-type scores, the evaluation report, the confusion matrix figure."""

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

NONE = "none"  # the confusion matrix's column of missed and row of spurious entities
Row = tuple[str, float, float, float, int]  # type, precision, recall, f1, support
# evaluate's score tables (lit_ner.scores.entity_scores), by their key in the report
SCORES = {"default": "Default mode (conlleval): exact spans", "strict": "Strict mode",
          "nested": "Entities inside another entity (recall: of the gold ones; precision: of the predicted ones)"}  # fmt: skip


def entity_rows(scores: Mapping[str, float], prefix: str) -> list[Row]:
    """Per-type (type, precision, recall, f1, support) rows from flat `{prefix}/f1_PER`-style scores."""
    types = sorted(k[len(prefix) + len("/support_") :] for k in scores if k.startswith(f"{prefix}/support_"))
    rows = [
        (t, scores[f"{prefix}/precision_{t}"], scores[f"{prefix}/recall_{t}"], scores[f"{prefix}/f1_{t}"], int(scores[f"{prefix}/support_{t}"]))
        for t in types
    ]
    support = sum(r[4] for r in rows)
    if f"{prefix}/f1" in scores:
        rows.append(("micro avg", scores[f"{prefix}/precision"], scores[f"{prefix}/recall"], scores[f"{prefix}/f1"], support))
    return rows


def markdown_table(rows: list[Row]) -> str:
    lines = ["| type | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {t} | {p:.4f} | {r:.4f} | {f:.4f} | {s} |" for t, p, r, f, s in rows]
    return "\n".join(lines)


def plot_confusion(counts: list[list[int]], overlaps: list[list[int]], names: list[str], title: str) -> Figure:
    """The matrix as a heat map with its counts; "(k overlap)" under a count that includes boundary errors."""
    # a bare Figure renders with Agg and leaves pyplot (and a notebook's backend) alone
    figure = Figure(figsize=(1.3 * len(names) + 2, 1.1 * len(names) + 1.5), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    ticks = range(len(names))
    axes.set(xticks=ticks, xticklabels=names, yticks=ticks, yticklabels=names, title=title)
    axes.set(xlabel="predicted type (none: missed)", ylabel="gold type (none: spurious)")
    darkest = max(max(row) for row in counts) or 1
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            if names[i] == NONE and names[j] == NONE:
                continue  # no entity on either side: nothing to count
            text = f"{count}" + (f"\n({overlaps[i][j]} overlap)" if overlaps[i][j] else "")
            axes.text(j, i, text, ha="center", va="center", color="white" if count > darkest / 2 else "black")
    return figure


def markdown_report(report: dict[str, Any]) -> str:
    def rows(table: dict[str, dict[str, float]]) -> list[Row]:
        return [(t, s["precision"], s["recall"], s["f1"], int(s["support"])) for t, s in table.items()]

    names = report["confusion"]["labels"]
    overlapping = sum(map(sum, report["confusion"]["overlap"]))
    lines = [
        f"# Evaluation of `{report['model']}` on {report['split']}"
        + (" (untrained head: zero-shot baseline)" if report["zero_shot"] else ""),
        "",
        f"{report['sentences']} sentences, {report['words']} words; {report['windowed_sentences']} sentences longer "
        f"than data.max_length read in overlapping windows. Entity-level scores from lit_ner's EntityMetric, "
        f"{report['checked']}.",
        "",
        *(line for mode, table in report["scores"].items() for line in (f"## {SCORES[mode]}", "",
                                                                        markdown_table(rows(table)), "")),
        "## Confusion of entity types (rows gold, columns predicted; none: missed or spurious)",
        "",
        "| gold \\ predicted | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
        *(f"| {name} | " + " | ".join(map(str, row)) + " |" for name, row in zip(names, report["confusion"]["counts"])),
        "",
        "Pairs by exact span, then by most shared words; "
        f"{overlapping} {'pair overlaps' if overlapping == 1 else 'pairs overlap'} without the same span.",
        "",
        *beyond_exact_match(report),
        f"## The {len(report['worst'])} sentences with the most errors",
        "",
    ]
    for s in report["worst"]:
        lines += [f"- sentence {s['sentence']}, {s['errors']} errors", f"  - gold: {s['gold']}"]
        lines.append(f"  - pred: {s['predicted']}")
    return "\n".join(lines) + "\n"


def beyond_exact_match(report: dict[str, Any]) -> list[str]:
    """The report's SemEval-2013 schemes, kinds of error, confidence intervals and calibration, as markdown lines."""
    lines: list[str] = []
    if "bootstrap" in report:
        lines += ["## 95 % confidence intervals of F1 (bootstrap over sentences)", "",
                  "| type | F1 | low | high |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {t} | {b['f1']:.4f} | {b['low']:.4f} | {b['high']:.4f} |" for t, b in report["bootstrap"].items()]
        lines.append("")
    if "semeval" in report:
        head = ("correct", "incorrect", "partial", "missed", "spurious", "precision", "recall", "f1")
        lines += ["## SemEval-2013 schemes (as nervaluate defines them)", "",
                  "| scheme | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]  # fmt: skip
        for scheme, row in report["semeval"]["overall"].items():
            cells = [f"{row[k]:.4f}" if isinstance(row[k], float) else str(row[k]) for k in head]
            lines.append(f"| {scheme} | " + " | ".join(cells) + " |")
        lines.append("")
    if "error_kinds" in report:
        kinds = list(report["error_kinds"]["overall"])
        lines += ["## Wrong entities by kind", "", "| type | " + " | ".join(kinds) + " |"]
        lines.append("|---" * (len(kinds) + 1) + "|")
        for name, row in [*report["error_kinds"]["by_type"].items(), ("all", report["error_kinds"]["overall"])]:
            lines.append(f"| {name} | " + " | ".join(str(row[k]) for k in kinds) + " |")
        lines.append("")
    calibration = report.get("calibration")
    if calibration and calibration.get("ece_before") is not None:
        evaluated = calibration["evaluated"]
        on_split = (f"on {report['split']} ({evaluated['entities']} entities) it moves the error from "
                    f"{evaluated['ece_before']:.4f} to {evaluated['ece_after']:.4f}"
                    if evaluated["entities"] else f"{report['split']} has no predicted entity")  # fmt: skip
        best = ", ".join(f"{t} {b['threshold']:.3f} (F1 {b['f1']:.4f})" for t, b in calibration["thresholds"].items())
        lines += ["## Calibration of entity scores", "",
                  f"Expected calibration error ({calibration['bins']} bins) of the predicted entities' scores against "
                  f"whether they are right, on {calibration['measured_on']}: {calibration['ece_before']:.4f} with the "
                  f"raw softmax, {calibration['ece_after']:.4f} after temperature scaling. The temperature fitted on "
                  f"all of validation: {calibration['temperature']:.3f}; {on_split}."
                  + (f" Best score threshold per type on validation: {best}." if best else ""),
                  ""]  # fmt: skip
    return lines
