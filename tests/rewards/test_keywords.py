"""Keyword counting for the RRA reward and the reasoning-action monitoring categories."""

from slowthink.rewards.keywords import ACTION_REWARD_KEYWORDS, KEYWORD_CATEGORIES, category_counts, count_keywords


def test_paper_action_keywords():
    assert set(ACTION_REWARD_KEYWORDS) == {"however", "but", "wait", "verify", "alternatively"}


def test_whole_words_case_insensitive():
    assert count_keywords("But WAIT, however: butter, awaited, verifying.", ACTION_REWARD_KEYWORDS) == 3
    assert count_keywords("", ACTION_REWARD_KEYWORDS) == 0
    assert count_keywords("wait", ()) == 0


def test_multiword_keywords_count_once():
    assert count_keywords("Let me double check again. double-check.", ("double check", "check again", "double-check")) == 2
    assert count_keywords("a.b (c+d)*", ("a.b", "(c+d)*")) == 1  # regex characters are escaped


def test_category_counts():
    text = "Wait, hmm. Let me verify and double check. Actually that is a mistake. Alternatively, another approach."
    assert category_counts(text) == {"reflection": 2, "verification": 2, "correction": 2, "alternatives": 2}
    assert set(category_counts("")) == set(KEYWORD_CATEGORIES)
    assert category_counts("x", {"mine": ("x",)}) == {"mine": 1}
