"""Configuration: file, --root override, defaults, and one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bigend.core.config import BigendConfig, load_config
from kernel.errors import UsageError


def test_defaults_use_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/bigend/config.toml here
    cfg = load_config()
    assert cfg.roots == [tmp_path]
    assert (cfg.depth, cfg.pool_size, cfg.project_timeout, cfg.rediscover_interval) == (3, 5, 2.5, 30.0)
    assert cfg.events_per_project == 100 and cfg.exclude == []


def test_the_default_file_is_read_and_relative_roots_follow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".config" / "bigend").mkdir(parents=True)
    (home / ".config" / "bigend" / "config.toml").write_text(
        'roots = ["~/code", "rel", "/abs/work"]\ndepth = 2\nexclude = ["archive-*"]\npool_size = 8\n'
    )
    monkeypatch.setenv("HOME", str(home))
    cfg = load_config()
    assert cfg.roots == [home / "code", home / ".config" / "bigend" / "rel", Path("/abs/work")]
    assert (cfg.depth, cfg.exclude, cfg.pool_size) == (2, ["archive-*"], 8)


def test_root_flags_replace_the_configured_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('roots = ["/somewhere"]\ndepth = 5\n')
    cfg = load_config(cfg_file, roots=["a", "/b"])
    assert cfg.roots == [tmp_path / "a", Path("/b")] and cfg.depth == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("roots = [", "not valid TOML"),
        ("rootz = []", "rootz: Extra inputs are not permitted"),
        ("depth = -1", "depth: Input should be greater than or equal to 0"),
        ('roots = "/one"', "roots must be a list"),
        ("pool_size = 0", "pool_size"),
    ],
)
def test_bad_files_are_usage_errors_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text(text)
    with pytest.raises(UsageError, match=message) as caught:
        load_config(cfg_file)
    assert str(cfg_file) in caught.value.message and "\n" not in caught.value.message


def test_a_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_the_model_refuses_unknown_fields() -> None:
    with pytest.raises(ValueError):
        BigendConfig.model_validate({"roots": [], "colour": "red"})
