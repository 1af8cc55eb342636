"""The curation report: rows read and kept per source, rows dropped per filter, examples.

Must not import the CLI, nor a heavy engine but through its wrapper (tests/test_layers.py).
"""

from __future__ import annotations

from pathlib import Path

from slowthink.curate.pipeline import FILTERS, CurationStats
from slowthink.report import markdown_table

WHY = {
    "multiple_choice": "options (A)-(E), 'which of the following', or a letter as the gold (section 2)",
    "proof": "asks for a proof (section 2)",
    "multi_part": "two or more labelled sub-questions (section 2)",
    "open_ended": "explain/describe, yes/no, or a prose gold (section 2)",
    "unparseable_answer": "the checker reads no value from the gold (section 2)",
    "exact_duplicate": "same problem after normalisation as an earlier row",
    "near_duplicate": "MinHash-estimated Jaccard of token 3-grams above the threshold with an earlier row of the same gold answer",
    "contaminated": "n-gram overlap with an evaluation benchmark",
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
