"""The argv a dispatch runs: `--command` parsing, the config order, where the prompt goes.

(Placeholder filling is `kernel.dispatch.agents.command.fill`, tested in test_tokens_parse.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.dispatch import config
from kernel.errors import UsageError


def test_command_flag_is_a_json_array_or_shell_words_never_a_shell() -> None:
    assert config.parse_command_flag('["a b", "$HOME"]') == ["a b", "$HOME"]
    assert config.parse_command_flag("prog 'two words' $HOME;x") == ["prog", "two words", "$HOME;x"]
    with pytest.raises(UsageError, match="JSON array"):
        config.parse_command_flag('["unclosed"')


def test_dispatch_toml_of_the_project_wins_over_the_default_which_alone_reads_the_prompt_on_stdin(
    tmp_path: Path,
) -> None:
    assert config.resolve("claude", tmp_path, model="opus") == config.Resolved(
        ["claude", "-p", "--output-format", "json", "--model", "opus"], prompt_on_stdin=True
    )
    (tmp_path / ".clavain").mkdir()
    (tmp_path / ".clavain" / "dispatch.toml").write_text(
        '[claude]\ncommand = ["my-claude", "{prompt_file}"]\n'
    )
    assert config.resolve("claude", tmp_path) == config.Resolved(["my-claude", "{prompt_file}"], False)
    assert config.resolve("claude", tmp_path, command=["x"]) == config.Resolved(["x"], False)
    with pytest.raises(UsageError, match="no command for agent type 'aider'"):
        config.resolve("aider", tmp_path)
