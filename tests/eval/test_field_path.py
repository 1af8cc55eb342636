"""Dotted paths into nested rows, as ``slowthink score`` reads other toolkits' outputs."""

from __future__ import annotations

import pytest

from slowthink.eval.field_path import PathError, parse_path, resolve

LIGHTEVAL_ROW = {
    "doc": {"query": "What is 1+1?", "choices": ["2"], "gold_index": 0, "id": "7"},
    "model_response": {"text": [r"\boxed{2}", r"\boxed{3}"]},
}
BATCH_ROW = {"custom_id": "p1", "response": {"body": {"choices": [{"message": {"content": "a"}}, {"message": {"content": "b"}}]}}}


def test_keys_indexes_and_an_index_read_from_the_row():
    assert resolve(LIGHTEVAL_ROW, "doc.choices[doc.gold_index]") == "2"
    assert resolve(LIGHTEVAL_ROW, "model_response.text[0]") == r"\boxed{2}"
    assert resolve(LIGHTEVAL_ROW, "model_response.text[-1]") == r"\boxed{3}"
    assert resolve({"resps": [["x", "y"]]}, "resps[0]") == ["x", "y"]


def test_star_maps_the_rest_of_the_path_over_a_list():
    assert resolve(BATCH_ROW, "response.body.choices[*].message.content") == ["a", "b"]


def test_quoted_and_flat_dotted_keys():
    assert resolve({"a.b": 1}, "a.b") == 1  # a flat key with a dot, as older tools write
    assert resolve({"x": {"a.b": 2}}, 'x["a.b"]') == 2


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("doc.answer", r"doc: no key 'answer' \(keys: choices, gold_index, id, query\)"),
        ("model_response.text[5]", r"model_response.text: index 5 outside a list of 2"),
        ("doc.query.x", r"doc.query: a str, not an object or a list"),
        ("doc[0]", r"doc: an object, indexed by 0"),
    ],
)
def test_a_path_that_leads_nowhere_names_the_step(path, message):
    with pytest.raises(PathError, match=message):
        resolve(LIGHTEVAL_ROW, path)


@pytest.mark.parametrize("bad", ["", "a..b", "a[", "a[]", ".a", "a]"])
def test_malformed_paths_are_refused(bad):
    with pytest.raises(ValueError):
        parse_path(bad)
