"""Keyword counting for the RRA reward (section 4.2.1)."""

from slowthink.rewards.keywords import ACTION_REWARD_KEYWORDS, count_keywords


def test_paper_action_keywords():
    assert set(ACTION_REWARD_KEYWORDS) == {"however", "but", "wait", "verify", "alternatively"}


def test_whole_words_case_insensitive():
    assert count_keywords("But WAIT, however: butter, awaited, verifying.", ACTION_REWARD_KEYWORDS) == 3
    assert count_keywords("", ACTION_REWARD_KEYWORDS) == 0
    assert count_keywords("wait", ()) == 0


def test_multiword_keywords_count_once():
    assert count_keywords("Let me double check again. double-check.", ("double check", "check again", "double-check")) == 2
    assert count_keywords("a.b (c+d)*", ("a.b", "(c+d)*")) == 1  # regex characters are escaped
