"""Rewards: answer extraction and checking, the paper's reward components (section 4.2.1), keyword lists."""
