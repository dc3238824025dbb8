"""Shell completion: ``xnet completion SHELL`` prints the script; bash runs it for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from execnet_cli.cli import main

REPO = Path(__file__).resolve().parent.parent
INVENTORY = """\
groups:
  web: {hosts: 'web[01-03]', vars: {transport: popen}}
  db: {hosts: db1, vars: {transport: popen}}
"""
#: Sources the script as a user's ~/.bashrc would, then completes each line of words given
#: on stdin as bash would at a Tab (COMP_WORDS, COMP_CWORD). ``compopt`` only works inside
#: a completion bash started itself, so a function stands in and says what was asked.
DRIVER = """\
source <("$XNET" completion bash)
compopt() { echo compopt "$@"; }
while IFS= read -r line; do
  eval "COMP_WORDS=($line)"
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _xnet_completion xnet
  printf '%s\\n' "${COMPREPLY[@]}" "--"
done
"""


def complete(env: Path, *lines: str) -> list[list[str]]:
    """What bash completes for each line of words (the last word is the one being typed)."""
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    wrapper = env / "bin" / "xnet"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m execnet_cli "$@"\n')
    wrapper.chmod(0o755)
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith("XNET_")},
        "PYTHONPATH": str(REPO),
        "PATH": f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}",
        "XNET": str(wrapper),
        "XDG_CONFIG_HOME": str(env / "config"),
    }
    done = subprocess.run(
        [bash, "-c", DRIVER],
        input="".join(line + "\n" for line in lines),
        capture_output=True, text=True, cwd=env, env=environ, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers: list[list[str]] = [[]]
    for word in done.stdout.splitlines():
        if word == "--":
            answers.append([])
        else:
            answers[-1].append(word)
    return answers[:-1]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_for_each_shell(shell: str) -> None:
    result = CliRunner().invoke(main, ["completion", shell])
    assert result.exit_code == 0
    assert "_XNET_COMPLETE" in result.stdout
    assert f"{shell}_" in result.stdout  # bash_complete, zsh_complete, fish_complete


def test_bash_completes_commands_options_files_and_hosts(env: Path) -> None:
    (env / "xnet.yaml").write_text(INVENTORY)
    (env / "lab.yaml").write_text("groups: {lab: {hosts: 'lab[1-2]', vars: {transport: popen}}}\n")
    answers = complete(
        env,
        "xnet r",
        "xnet run --ti",
        "xnet run -i ''",
        "xnet run -H we",
        "xnet sh -H 'web01,web0'",
        "xnet sh -H 'web&d'",
        "xnet hosts -i lab.yaml ''",
        "xnet ping d",
        "xnet shell w",
        "xnet completion ''",
    )
    assert answers == [
        ["rsync", "run"],
        ["--timeout"],
        ["compopt -o default"],  # bash completes file names itself
        ["web", "web01", "web02", "web03"],
        ["web01,web02", "web01,web03"],
        ["web&db", "web&db1"],
        ["all", "lab", "lab1", "lab2"],
        ["db", "db1"],
        ["web", "web01", "web02", "web03"],
        ["bash", "zsh", "fish"],
    ]


def test_a_broken_inventory_completes_nothing_quietly(env: Path) -> None:
    (env / "xnet.yaml").write_text("groups: [\n")
    assert complete(env, "xnet run -H w") == [[]]
