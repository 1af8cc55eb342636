"""Prose that points somewhere: no tracker numbers, design notes that are in the repository,
section citations that name a section, and a README without the changelog.

A reader has no issue tracker to look in, so "fixed in issue N" tells them nothing: a comment
says what was broken or measured instead. The design notes the code cites are docs/design.md;
a citation such as ``(docs/design.md, "The sandbox")`` must name one of its headings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where prose lives: the package, the docs, the tests, the benchmarks and the top-level files.
TREES = ("src/slowthink", "docs", "tests", "bench", "configs")
FILES = ("README.md", "CHANGELOG.md", "Makefile", "pyproject.toml")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ""}

TRACKER_NUMBER = re.compile(r"\b[Ii]ssues? #?\d+|\bissue-\d+")
DESIGN_CITATION = re.compile(r'design\.md\)?,? "([^"]+)"')


def prose_files() -> list[Path]:
    found = [ROOT / name for name in FILES if (ROOT / name).is_file()]
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*")):
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts and ".egg-info" not in str(path):
                found.append(path)
    if len(found) < 50:  # an installed package without its repository: nothing to read
        pytest.skip(f"the repository's files are not here ({ROOT})")
    return found


def where(path: Path, text: str, match: re.Match) -> str:
    line = text.count("\n", 0, match.start()) + 1
    return f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}"


def test_no_prose_cites_a_tracker_number():
    hits = []
    for path in prose_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        hits += [where(path, text, m) for m in TRACKER_NUMBER.finditer(text)]
    assert not hits, "say what was broken or measured instead of a tracker number:\n" + "\n".join(hits)


def test_the_design_notes_are_docs_design_md():
    assert (ROOT / "docs" / "design.md").is_file()
    hits = []
    for path in prose_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        hits += [where(path, text, m) for m in re.finditer(r"DESIGN\.md", text)]
    assert not hits, "the design notes are docs/design.md:\n" + "\n".join(hits)


def test_every_design_citation_names_a_section_of_docs_design_md():
    headings = {line.lstrip("#").strip() for line in (ROOT / "docs" / "design.md").read_text(encoding="utf-8").splitlines() if line.startswith("#")}
    cited, unknown = 0, []
    for path in prose_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in DESIGN_CITATION.finditer(text):
            cited += 1
            if not any(heading == match.group(1) or heading.startswith(match.group(1) + " ") for heading in headings):
                unknown.append(where(path, text, match))
    assert cited >= 10, f"only {cited} citations of docs/design.md found: is the pattern still right?"
    assert not unknown, f"no such section in docs/design.md ({sorted(headings)}):\n" + "\n".join(unknown)


def test_the_changelog_lives_in_changelog_md():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Changelog\n", 1)
    if len(section) == 2:
        body = section[1].split("\n## ", 1)[0]
        entries = [line for line in body.splitlines() if line.startswith("- ")]
        assert not entries, f"changelog entries in README.md belong in CHANGELOG.md: {entries[:3]}"
        assert "CHANGELOG.md" in body
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert sum(line.startswith("- ") for line in changelog.splitlines()) > 10
