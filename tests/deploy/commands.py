"""Parsing the `sdpflow ...` command lines that documentation and deploy files show, and
checking each against the real command's --help: the command exists, takes the positional
arguments shown, and has every option it is shown with."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SDPFLOW = str(Path(sys.executable).parent / "sdpflow")
#: Options of the top-level command that take a value (they come before the subcommand).
GLOBAL_WITH_VALUE = {"--cluster", "--db", "--db-password-file"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
SHELLS = {"bash", "sh", "shell", "console"}


@dataclass(frozen=True)
class Command:
    """One sdpflow command line: options before the subcommand, words (subcommands and
    positional arguments) up to the first option, and the options after them."""

    line: str
    global_options: tuple[str, ...]
    words: tuple[str, ...]
    options: tuple[str, ...]


def shell_lines(text: str) -> list[str]:
    """Lines of the README's shell blocks, continuations joined, plus inline `sdpflow ...` code."""
    lines = []
    for language, body in FENCE.findall(text):
        if language in SHELLS:
            lines += body.replace("\\\n", " ").splitlines()
    prose = FENCE.sub("", text)
    lines += re.findall(r"`(sdpflow\s[^`]+)`", prose)
    return lines


def parse(line: str) -> list[Command]:
    """The sdpflow commands in one shell line (also after `&&`, `|`, or as an argument, as in
    `sbatch job.sbatch sdpflow run ...`); redirections and comments left out."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    commands = []
    segment: list[str] = []
    for token in [*tokens, ";"]:
        if token and set(token) <= set("();<>|&"):
            # `sdpflow` as the command, not as an option's value (`useradd --gid sdpflow`)
            at = [i for i, word in enumerate(segment) if word == "sdpflow" and not (i and segment[i - 1].startswith("-"))]
            if at:
                commands.append(_command(line, segment[at[0] + 1:]))
            segment = [] if not token.startswith(">") and not token.startswith("<") else ["<redirect>"]
            continue
        segment.append(token)
    return commands


def _command(line: str, tokens: list[str]) -> Command:
    global_options, words, options = [], [], []
    rest = iter(tokens)
    for token in rest:
        if not token.startswith("-"):
            words.append(token)
            break
        name = token.split("=", 1)[0]
        global_options.append(name)
        if name in GLOBAL_WITH_VALUE and "=" not in token:
            next(rest, None)
    for token in rest:
        if token.startswith("-"):
            options.append(token)
            break
        words.append(token)
    options += [token for token in rest if token.startswith("-")]
    return Command(line.strip(), tuple(global_options), tuple(words),
                   tuple(option.split("=", 1)[0] for option in options))


@lru_cache(maxsize=None)
def help_text(*words: str) -> tuple[int, str, str]:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    result = subprocess.run([SDPFLOW, *words, "--help"], capture_output=True, text=True, timeout=60, check=False,
                            env=env)
    return result.returncode, result.stdout, result.stderr


def usage(text: str) -> list[str]:
    """The words after `Usage: sdpflow` in a help text."""
    match = re.search(r"Usage:\s*sdpflow\b(.*)", text)
    assert match, text
    return match.group(1).split()


def has_option(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def check_command(command: Command) -> None:
    """Assert that ``command`` exists with its positional arguments and options."""
    code, top, err = help_text()
    assert code == 0, err
    for option in command.global_options:
        assert has_option(top, option), f"`sdpflow {option}` is not an option of sdpflow: {command.line}"

    code, out, err = help_text(*command.words)
    assert code == 0, f"`sdpflow {' '.join(command.words)} --help` fails: {err.strip()}"
    # The usage line names the command path; the words after it are positional arguments,
    # no more than the command takes.
    shown = usage(out)
    path = shown[: shown.index("[OPTIONS]")] if "[OPTIONS]" in shown else shown
    arguments = [word for word in shown[len(path):] if word not in ("[OPTIONS]", "COMMAND", "[ARGS]...")]
    assert tuple(command.words[: len(path)]) == tuple(path), f"{command.line}: usage is `sdpflow {' '.join(shown)}`"
    positional = command.words[len(path):]
    if not any(word.endswith("...") for word in arguments):
        assert len(positional) <= len(arguments), (
            f"{command.line}: `sdpflow {' '.join(path)}` takes {arguments or 'no arguments'}, not {list(positional)}")
    for option in command.options:
        # WSClean's single-dash spelling (-size) is read as the long option (--size): see cli.options
        spelled = "-" + option if option.startswith("-") and not option.startswith("--") and len(option) > 2 else option
        assert has_option(out, option) or has_option(out, spelled), (
            f"`sdpflow {' '.join(path)}` has no option {option}: {command.line}")
