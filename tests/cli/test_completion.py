"""``gdscope completion bash|zsh``: written from the real parser, so it completes every command,
option and choice; the bash script is run in bash and asked to complete."""

from __future__ import annotations

import argparse
import shutil
import subprocess

import pytest

from gdscope.cli.completion import script
from gdscope.cli.main import build_parser, main

PARSER = build_parser()
SUBCOMMANDS: dict[str, argparse.ArgumentParser] = next(
    a.choices for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)
)
BASH = shutil.which("bash")


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings}


def complete(words: list[str]) -> list[str]:
    """What the bash script completes for the last of ``words`` (the word being typed)."""
    program = 'source /dev/stdin; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _gdscope; '
    program += 'printf "%s\\n" "${COMPREPLY[@]}"'
    done = subprocess.run(
        [BASH or "bash", "-c", program, "_", *words],
        input=script(PARSER, "bash"), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line for line in done.stdout.splitlines() if line]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_every_command_option_and_choice_is_in_the_script(shell):
    text = script(PARSER, shell)
    assert "completion" in SUBCOMMANDS and len(SUBCOMMANDS) >= 12
    for name, sub in SUBCOMMANDS.items():
        assert f" {name}) opts=" in text
        for option in options(sub):
            assert f" {option}" in text, (name, option)
        for action in sub._actions:
            for choice in action.choices or ():
                assert f" {choice}" in text or f"({choice}" in text or f'"{choice}' in text


def test_the_command_prints_the_script(capsys):
    assert main(["completion", "zsh"]) == 0
    assert capsys.readouterr().out == script(PARSER, "zsh")
    with pytest.raises(SystemExit):
        main(["completion", "fish"])


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_choices():
    assert complete(["gdscope", "rep"]) == ["replay", "reproduce"]
    assert set(complete(["gdscope", ""])) >= set(SUBCOMMANDS) | {"--version"}
    for name, sub in SUBCOMMANDS.items():  # every option of every command, nothing else
        assert set(complete(["gdscope", name, "--"])) == {o for o in options(sub) if o[1] == "-"}
    assert complete(["gdscope", "reproduce", "--format", "p"]) == ["png", "pdf"]
    assert complete(["gdscope", "plot", "--loss", "mse", "h"]) == ["huber"]  # several values
    assert complete(["gdscope", "plot", "--view", "heatmap", "c"]) == []  # one value: files
    assert complete(["gdscope", "example", "c"]) == ["cnn", "connect"]
    assert complete(["gdscope", "plot", "--out", "x"]) == []  # a file name: bash's default


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_parses_its_script(tmp_path):
    (tmp_path / "_gdscope").write_text(script(PARSER, "zsh"))
    subprocess.run(["zsh", "-n", str(tmp_path / "_gdscope")], check=True)
