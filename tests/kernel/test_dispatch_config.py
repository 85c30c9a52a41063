"""The argv a dispatch runs: placeholders filled in one pass, `--command` parsing, the config order."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.dispatch import config
from kernel.errors import UsageError

VALUES = {
    "{prompt}": "fix {output} now",
    "{prompt_file}": "/p.md",
    "{output}": "/o.log",
    "{model}": "m",
    "{id}": "x1",
}


def test_placeholders_are_filled_once_and_unknown_braces_stay() -> None:
    template = ["{prompt}", "--file={prompt_file}", "{{model}}", "{unknown}{id}", "{", "plain", ""]
    assert config.fill(template, VALUES) == [
        "fix {output} now", "--file=/p.md", "{m}", "{unknown}x1", "{", "plain", "",
    ]  # fmt: skip


def test_command_flag_is_a_json_array_or_shell_words_never_a_shell() -> None:
    assert config.parse_command_flag('["a b", "$HOME"]') == ["a b", "$HOME"]
    assert config.parse_command_flag("prog 'two words' $HOME;x") == ["prog", "two words", "$HOME;x"]
    with pytest.raises(UsageError, match="JSON array"):
        config.parse_command_flag('["unclosed"')


def test_dispatch_toml_of_the_project_wins_over_the_default_and_model_goes_before_the_prompt(
    tmp_path: Path,
) -> None:
    assert config.resolve("claude", tmp_path, model="opus") == [
        "claude", "-p", "--output-format", "json", "--model", "{model}", "{prompt}",
    ]  # fmt: skip
    (tmp_path / ".clavain").mkdir()
    (tmp_path / ".clavain" / "dispatch.toml").write_text(
        '[claude]\ncommand = ["my-claude", "{prompt_file}"]\n'
    )
    assert config.resolve("claude", tmp_path) == ["my-claude", "{prompt_file}"]
    assert config.resolve("claude", tmp_path, command=["x"]) == ["x"]
