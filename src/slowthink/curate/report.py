"""The curation report: rows read and kept per source, rows dropped per filter, examples."""

from __future__ import annotations

from pathlib import Path

from slowthink.curate.pipeline import FILTERS, CurationStats
from slowthink.report import markdown_table

WHY = {
    "multiple_choice": "options (A)-(E), 'A: ...', 'which of the following', or a letter as the gold (section 2)",
    "proof": "asks for a proof (section 2)",
    "multi_part": "two or more labelled sub-questions: (a), (i), (1), (Ⅰ), '1.' at a line start (section 2)",
    "open_ended": "explain/describe, yes/no, or a prose gold (section 2)",
    "unparseable_answer": "the checker reads no value from the gold (section 2)",
    "exact_duplicate": "same problem after normalisation as an earlier row",
    "near_duplicate": "Jaccard of token 3-grams at or above the threshold with an earlier row of the same gold answer (MinHash LSH candidates, each verified)",
    "contaminated": "copies one benchmark problem: most of its n-grams, all its numbers and its question are in the row (the problem is named)",
    "too_easy": "every sample of the model solved it (section 2)",
    "too_hard": "no sample of the model solved it (section 2)",
}


def _clip(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def curation_report(stats: CurationStats, title: str, command: str = "", notes: list[str] = ()) -> str:
    parts = [f"# {title}"]
    if command:
        parts.append(f"Command: `{command}`")
    parts += list(notes)
    parts.append(f"Read {stats.read} rows, kept {stats.kept} ({100 * stats.kept / max(stats.read, 1):.1f}%), dropped {stats.read - stats.kept}.")
    sources = sorted(stats.sources)
    parts.append(
        "## Per source\n\n"
        + markdown_table(
            ("source", "read", "kept"), [(s if s.startswith("hf:") else Path(s).name, stats.sources[s], stats.kept_sources[s]) for s in sources]
        )
    )
    rows = [(name, stats.dropped[name], WHY[name]) for name in FILTERS]
    parts.append(
        "## Dropped per filter\n\nEach row counts under the first filter that drops it (filters run in this order).\n\n"
        + markdown_table(("filter", "dropped", "what it catches"), rows)
    )
    if stats.contaminations:
        # markdown_table escapes the pipes of a problem's text.
        rows = [(f"`{c['id']}`", c["detail"], _clip(c["problem"], 120)) for c in stats.contaminations]
        parts.append(
            "## Every contamination drop\n\nEach dropped row and the benchmark problem it copies.\n\n"
            + markdown_table(("row", "copies", "problem (start)"), rows)
        )
    parts.append("## Examples")
    for name in FILTERS:
        examples = stats.examples.get(name)
        if not examples:
            continue
        lines = [
            f"- `{e['id']}`: {_clip(e['problem'])} — gold `{_clip(e['answer'], 60)}`" + (f" ({e['detail']})" if e["detail"] else "") for e in examples
        ]
        parts.append(f"### {name}\n\n" + "\n".join(lines))
    return "\n\n".join(parts) + "\n"
