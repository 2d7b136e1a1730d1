"""The <|image_k|> rules: explicit tags number the images 1..n across the conversation, or none are used."""

from __future__ import annotations

from phi3v_data.format import Record
from phi3v_data.placeholders import placeholder_faults, user_contents


def record(*turns: tuple[list[str], str, str]) -> Record:
    conversations = [{"images": images, "user": user, "assistant": answer} for images, user, answer in turns]
    return Record.model_validate({"id": "r", "source": "t", "conversations": conversations})


def codes(value: Record) -> list[str]:
    return [fault.code for fault in placeholder_faults(value)]


def test_tags_numbered_across_turns_are_fine() -> None:
    assert codes(record((["a", "b"], "<|image_1|> vs <|image_2|>", "x"), (["c"], "<|image_3|>?", "y"))) == []


def test_tags_restarting_in_each_turn_are_a_mismatch() -> None:
    assert codes(record((["a"], "<|image_1|>", "x"), (["b"], "<|image_1|>", "y"))) == ["placeholder-mismatch"]


def test_a_tag_without_an_image_and_a_missing_tag_are_mismatches() -> None:
    assert codes(record(([], "<|image_1|>", "x"))) == ["placeholder-mismatch"]
    assert codes(record((["a", "b"], "<|image_2|>", "x"))) == ["placeholder-mismatch"]


def test_a_tag_in_an_answer_is_a_warning_code() -> None:
    assert codes(record((["a"], "What?", "It is <|image_1|>"))) == ["placeholder-in-assistant"]


def test_without_tags_each_turn_gets_its_images_before_the_text_numbered_across_turns() -> None:
    value = record((["a", "b"], "First", "x"), ([], "Text only", "y"), (["c"], "Last", "z"))
    assert user_contents(value) == ["<|image_1|><|image_2|>\nFirst", "Text only", "<|image_3|>\nLast"]
