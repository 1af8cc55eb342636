"""The reasoning-action categories the keyword monitor counts (section 3.2, Figure 4)."""

from slowthink.monitors.keywords import KEYWORD_CATEGORIES, category_counts


def test_category_counts():
    text = "Wait, hmm. Let me verify and double check. Actually that is a mistake. Alternatively, another approach."
    assert category_counts(text) == {"reflection": 2, "verification": 2, "correction": 2, "alternatives": 2}
    assert set(category_counts("")) == set(KEYWORD_CATEGORIES)
    assert category_counts("x", {"mine": ("x",)}) == {"mine": 1}
