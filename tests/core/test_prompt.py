"""The prompt builder reproduces the real Phi-3.5-vision processor's ids, with the real tokenizer."""

from pathlib import Path

import pytest

from phi3v_data.errors import ModelFilesError, Phi3vDataError
from phi3v_data.format import Record
from phi3v_data.prompt import IGNORE_INDEX, PromptBuilder

MODEL_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "phi35v"
USER, ASSISTANT, END, ENDOFTEXT, BOS = 32010, 32001, 32007, 32000, 1


@pytest.fixture(scope="module")
def builder() -> PromptBuilder:
    return PromptBuilder.from_model_dir(MODEL_DIR)


def record(*turns: dict) -> Record:
    return Record.model_validate({"id": "r", "source": "test", "conversations": list(turns)})


def test_the_cookbook_answer_is_the_known_ids(builder: PromptBuilder) -> None:
    ucf = record({"images": [], "user": "Classify.", "assistant": "BabyCrawling"})
    (answer,) = builder.answers(ucf)
    assert builder.tokenizer.encode(answer, add_special_tokens=False).ids == [
        26835, 29907, 1610, 1847, 32007, 29871, 13, 32000,
    ]  # fmt: skip


def test_implicit_tags_go_before_the_text_in_the_chat_template(builder: PromptBuilder) -> None:
    one = record({"images": ["a.jpg"], "user": "What is this?", "assistant": "A cat."})
    assert builder.prompts(one) == ["<|user|>\n<|image_1|>\nWhat is this?<|end|>\n<|assistant|>\n"]


def test_image_runs_are_negative_ids_between_chunks_that_each_start_with_bos(builder: PromptBuilder) -> None:
    two = record({"images": ["a.jpg", "b.jpg"], "user": "<|image_1|><|image_2|>Both?", "assistant": "Yes."})
    encoded = builder.encode(two, [2, 3])
    text_chunk = builder.tokenizer.encode("Both?<|end|>\n<|assistant|>\n").ids
    answer = builder.tokenizer.encode("Yes.<|end|>\n<|endoftext|>", add_special_tokens=False).ids
    # <s><|user|>\n, image 1, <s> (the empty chunk between adjacent tags), image 2, <s> + the text.
    assert encoded.input_ids == [BOS, USER, 29871, 13, -1, -1, BOS, -2, -2, -2, *text_chunk, *answer]
    # <|assistant|> absorbs the newline after it (rstrip in the tokenizer), as in the real processor.
    assert text_chunk[0] == BOS and text_chunk[-1] == ASSISTANT
    assert answer[-4:] == [END, 29871, 13, ENDOFTEXT]


def test_only_answer_tokens_carry_labels(builder: PromptBuilder) -> None:
    two_turns = record(
        {"images": ["a.jpg"], "user": "First?", "assistant": "One."},
        {"images": [], "user": "Second?", "assistant": "Two."},
    )
    encoded = builder.encode(two_turns, [5])
    labelled = [token for token, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE_INDEX]
    answers = [builder.tokenizer.encode(text, add_special_tokens=False).ids for text in builder.answers(two_turns)]
    assert labelled == answers[0] + answers[1]
    assert answers[0][-3:] == [END, 29871, 13] and answers[1][-1] == ENDOFTEXT
    assert [label for token, label in zip(encoded.input_ids, encoded.labels) if token < 0] == [IGNORE_INDEX] * 5


def test_count_is_the_length_of_the_encoding_and_grows_with_image_tokens(builder: PromptBuilder) -> None:
    one = record({"images": ["a.jpg"], "user": "What is this?", "assistant": "A cat."})
    assert builder.count_tokens(one, [757]) == len(builder.encode(one, [757]))
    assert builder.count_tokens(one, [757]) - builder.count_tokens(one, [313]) == 757 - 313


def test_a_folder_without_tokenizer_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesError, match=r"tokenizer\.json") as raised:
        PromptBuilder.from_model_dir(tmp_path)
    assert isinstance(raised.value, Phi3vDataError) and isinstance(raised.value, FileNotFoundError)


def test_a_later_turn_continues_the_sequence_without_a_new_bos(builder: PromptBuilder) -> None:
    # As when the real processor reads a whole conversation: <s> starts the sequence and follows images only.
    two_turns = record(
        {"images": [], "user": "hi", "assistant": "yo"},
        {"images": ["a.jpg"], "user": "again", "assistant": "ok"},
    )
    ids = builder.encode(two_turns, [2]).input_ids
    second_turn = ids.index(USER, 2)
    assert ids.count(BOS) == 2 and ids[0] == BOS and ids[ids.index(-1) + 2] == BOS
    assert ids[second_turn - 1] == 13  # the first answer's "<|end|>\n", then straight into <|user|>


@pytest.mark.parametrize(
    "tokenizer_json, config_json",
    [("{}", '{"chat_template": "x"}'), ("{", '{"chat_template": "x"}'), (None, "not json"), (None, "{}"),
     (None, '{"chat_template": "{{ messages | no_such_filter }}"}')],
    ids=["tokenizer-without-model", "tokenizer-not-json", "config-not-json", "no-template", "template-error"],
)
def test_broken_model_files_are_a_model_files_error(
    tmp_path: Path, tokenizer_json: str | None, config_json: str
) -> None:
    (tmp_path / "tokenizer.json").write_text(tokenizer_json or (MODEL_DIR / "tokenizer.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(config_json)
    with pytest.raises(ModelFilesError, match=str(tmp_path)):
        PromptBuilder.from_model_dir(tmp_path)


def test_templates_may_call_raise_exception_as_under_transformers(builder: PromptBuilder) -> None:
    template = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}ok"
    custom = PromptBuilder(builder.tokenizer, template)
    assert custom.user_prompt("hello") == "ok"
