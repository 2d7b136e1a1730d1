"""Hypothesis strategies for JSONL records: often valid, often broken in one place (shared by the property tests)."""

from __future__ import annotations

import operator
import string
from typing import Any

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
# Whitespace on which regex engines disagree (\x1c-\x1f, U+FEFF) included on purpose, alone too;
# and image tags, which send a record to the placeholder rules.
texts = (
    st.text(alphabet=string.printable + "éあ \u00a0\u2028\x1c\x1f\ufeff\x85", min_size=1, max_size=12)
    | st.sampled_from(["", " ", "\x1c", "\x1f ", "\ufeff", "\x85", "\u3000", "\u200b", "<|image_1|>", "x <|image_2|>"])
)
# Paths near every path rule: separators, dots, drives, leading characters that sort before "0".
image_paths = st.sampled_from(["a.jpg", "sub/b.png", "../x.jpg", "/abs.jpg", "c\\d.jpg", "", "C:x.jpg", "n\x00.jpg"]) | st.text(
    alphabet="ab./\\:- 0é\x00", max_size=8
)
turns = st.fixed_dictionaries(
    {"user": texts, "assistant": texts},
    optional={"images": st.lists(image_paths, max_size=3)},
)
records = st.fixed_dictionaries(
    {"id": texts, "source": texts, "conversations": st.lists(turns, max_size=3)},
    optional={"meta": st.none() | st.dictionaries(st.text(max_size=4), json_values, max_size=3)},
)


def mutations(value: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A valid-looking record with one field deleted, retyped or added, at the top or in a turn."""
    keys = [*sorted(value), "extra"]
    top = st.sampled_from(keys).flatmap(
        lambda key: st.one_of(
            st.just({k: v for k, v in value.items() if k != key}),
            json_values.map(lambda new: {**value, key: new}),
        )
    )
    if not value["conversations"]:
        return top
    in_turn = st.tuples(st.sampled_from(["images", "user", "assistant", "x"]), json_values).map(
        lambda change: {**value, "conversations": [{**value["conversations"][0], change[0]: change[1]}]}
    )
    return st.one_of(top, in_turn)


# Records as generated (often valid) and with one field broken.
candidate_records = records | records.flatmap(mutations)

# Records close to what converters write, which the fast path mostly accepts: texts that start with
# printable ASCII (then anything), ordinary paths with the odd character near a path rule.
common_texts = st.builds(operator.add, st.sampled_from(["a", "Q", "0", "~", "!", "<"]), texts | st.just(""))
common_paths = st.builds(
    operator.add, st.sampled_from(["train/a", "b", "0"]), st.text(alphabet="ab./\\:-0é\x00", max_size=4)
) | image_paths
common_records = st.fixed_dictionaries(
    {
        "id": common_texts,
        "source": common_texts,
        "conversations": st.lists(
            st.fixed_dictionaries(
                {"user": common_texts, "assistant": common_texts},
                optional={"images": st.lists(common_paths, max_size=4)},
            ),
            min_size=1,
            max_size=3,
        ),
    },
    optional={"meta": st.none() | st.just({}) | st.dictionaries(st.text(max_size=4), json_values, max_size=2)},
)
