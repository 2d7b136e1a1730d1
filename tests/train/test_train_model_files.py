"""A Hub model id: the tokenizer files come from the Hugging Face cache, every one the prompt builder reads."""

import shutil

import pytest
from train_fixtures import TINY_MODEL

from phi3v_data.prompt import PromptBuilder
from phi3v_train import model_files
from phi3v_train.model_files import model_files_dir


def test_a_hub_id_fetches_every_tokenizer_file_into_one_cache_folder(tmp_path, monkeypatch):
    snapshot = tmp_path / "hub" / "models--someone--phi" / "snapshots" / "0123"
    requested = []

    def fake_cached_file(model: str, filename: str, **options) -> str:
        """A fresh cache: each file lands in the snapshot only when it is asked for, as a download would."""
        assert model == "someone/phi"
        requested.append(filename)
        snapshot.mkdir(parents=True, exist_ok=True)
        return shutil.copy(TINY_MODEL / filename, snapshot / filename)

    monkeypatch.setattr(model_files, "cached_file", fake_cached_file)
    folder = model_files_dir("someone/phi")
    assert folder == snapshot
    assert sorted(requested) == ["tokenizer.json", "tokenizer_config.json"]
    # What was fetched is enough for the prompt builder, chat template included.
    assert PromptBuilder.from_model_dir(folder).user_prompt("hi") == PromptBuilder.from_model_dir(TINY_MODEL).user_prompt("hi")


def test_a_local_folder_is_used_as_it_is(monkeypatch):
    monkeypatch.setattr(model_files, "cached_file", lambda *args, **kwargs: pytest.fail("looked up in the Hub cache"))
    assert model_files_dir(str(TINY_MODEL)) == TINY_MODEL
