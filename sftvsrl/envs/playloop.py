"""The terminal game loop that ``sftvsrl play generalpoints`` and ``sftvsrl play virl`` share.

A game (``Game``) says how to start an episode, how a typed line becomes an answer, what
a hint is and what changed after a step; ``play`` does the rest the same way for every
game: the commands ``help``, ``hint`` (or ``?``), ``show`` and ``quit`` are never scored,
a line holding control characters (an arrow key pressed where there is no line editing)
is refused instead of being sent as an answer, the prompt counts attempts, a finished
episode offers another, and quitting (or end of input) prints the score and exits 0.

Lines are read through ``input_fn(prompt)``, a replaceable function: ``LineReader`` uses
``readline`` (editing and history, one history per game, kept in memory only) when the
input is a terminal, and plain reads echoed to the output otherwise.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUIT_WORDS = ("quit", "exit", "q")
HINT_WORDS = ("hint", "?")
HELP_WORDS = ("help", "h")
SHOW_WORDS = ("show",)
YES_WORDS = ("", "y", "yes")
NO_WORDS = ("n", "no")

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

InputFn = Callable[[str], str]
Printer = Callable[[str], None]


@dataclass
class Game:
    """What ``play`` needs to know about one game.

    ``new_episode()`` returns ``(obs, info)`` for the next episode; ``another`` is False
    where there is no other one to offer (a fixed hand). ``intro`` is printed when an episode starts, ``show_text``
    for ``show``; ``changed`` is what to print after a step that did not end the episode
    (only what is new), ``ending`` a line for an episode that ended.
    """

    name: str
    env: Any
    episode_word: str
    answer_help: str
    new_episode: Callable[[], tuple[Any, dict]]
    to_answer: Callable[[str, dict], str]
    hint: Callable[[dict], str]
    intro: Callable[[Any, dict], str]
    show_text: Callable[[Any, dict], str]
    changed: Callable[[Any, Any, dict], str]
    ending: Callable[[dict], str]
    status: Callable[[dict], str]
    another: bool = True


@dataclass
class Score:
    episodes: int = 0
    wins: int = 0
    answers: int = 0
    reward: float = 0.0
    episode_open: bool = field(default=False, repr=False)

    def summary(self, word: str) -> str:
        played = self.episodes
        plural = word if played == 1 else f"{word}s"
        answers = "answer" if self.answers == 1 else "answers"
        text = f"Score: {self.wins} of {played} {plural} won, {self.answers} {answers} scored, "
        text += f"total reward {self.reward:+g}"
        if self.episode_open:
            text += " (the last one unfinished)"
        return text + "."


class LineReader:
    """``input()`` with readline editing and an in-memory history per game on a terminal;
    on a pipe, each line read is echoed after its prompt so a transcript reads like a game."""

    _histories: dict[str, list[str]] = {}

    def __init__(self, game: str, stdin=None, stdout=None) -> None:
        self.game = game
        self.stdin = stdin
        self.stdout = stdout
        self.readline = None
        if self._in().isatty():
            try:
                import readline
            except ImportError:  # Windows without pyreadline: plain input
                readline = None
            self.readline = readline
            if readline is not None:
                readline.clear_history()
                for line in self._histories.setdefault(game, []):
                    readline.add_history(line)

    def _in(self):
        return self.stdin if self.stdin is not None else sys.stdin

    def _out(self):
        return self.stdout if self.stdout is not None else sys.stdout

    def __call__(self, prompt: str, remember: bool = True) -> str:
        if self.readline is not None:
            line = input(prompt)
            rl = self.readline
            n = rl.get_current_history_length()
            if line.strip() and n:
                if remember:
                    self._histories.setdefault(self.game, []).append(line)
                else:
                    rl.remove_history_item(n - 1)
            return line
        out = self._out()
        out.write(prompt)
        out.flush()
        line = self._in().readline()
        if not line:
            out.write("\n")
            raise EOFError
        line = line.rstrip("\r\n")
        out.write(printable(line) + "\n")
        return line


def has_control_chars(line: str) -> bool:
    """A line with escape sequences or other control characters (tabs are fine)."""
    return bool(_CONTROL.search(line))


def printable(line: str) -> str:
    """``line`` with its control characters written as escapes (``\\x1b``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), line)


def help_text(game: Game) -> str:
    return "\n".join(
        [
            "Commands (never scored):",
            "  help         this list",
            "  hint, ?      show the expert's answer",
            "  show         print the full prompt again",
            "  quit, q      stop and print the score (Ctrl-D too)",
            f"Anything else is scored as your answer: {game.answer_help}",
        ]
    )


def _ask_another(game: Game, input_fn: InputFn, say: Printer) -> bool:
    """True for another episode, False to stop; EOF counts as stop."""
    while True:
        try:
            line = _read(input_fn, f"\nAnother {game.episode_word}? [Y/n] ", remember=False)
        except EOFError:
            return False
        word = line.strip().lower()
        if has_control_chars(word):
            say("Please answer y or n (use the arrow keys only for editing).")
            continue
        if word in YES_WORDS:
            return True
        if word in NO_WORDS or word in QUIT_WORDS:
            return False
        say("Please answer y or n.")


def _read(input_fn: InputFn, prompt: str, remember: bool = True) -> str:
    if isinstance(input_fn, LineReader):
        return input_fn(prompt, remember=remember)
    return input_fn(prompt)


def play(game: Game, input_fn: InputFn | None = None, say: Printer = print) -> int:
    """Play episodes of ``game`` until the player quits; returns the exit code: 0, or 130
    after Ctrl-C (the score is printed either way)."""
    read = input_fn if input_fn is not None else LineReader(game.name)
    score = Score()
    try:
        return _play(game, read, say, score)
    except KeyboardInterrupt:
        say("")
        say(score.summary(game.episode_word))
        return 130


def _play(game: Game, read: InputFn, say: Printer, score: Score) -> int:

    def bye() -> int:
        say("")
        say(score.summary(game.episode_word))
        say("Bye.")
        return 0

    first = True
    while True:
        obs, info = game.new_episode()
        score.episodes += 1
        score.episode_open = True
        say(game.intro(obs, info))
        if first:
            say("\n(Type help for the commands; hint, show and quit are never scored.)")
            first = False
        done = False
        while not done:
            try:
                line = _read(read, f"\n[{game.status(info)}] > ")
            except EOFError:
                return bye()
            line = line.rstrip("\r\n")
            text = line.strip()
            word = text.lower()
            if not text:
                continue
            if has_control_chars(line):
                say(
                    "That line holds control characters (a special key?), so it was not sent "
                    "as an answer and nothing was scored. Use the arrow keys only for editing."
                )
                continue
            if word in QUIT_WORDS:
                return bye()
            if word in HELP_WORDS:
                say(help_text(game))
                continue
            if word in HINT_WORDS:
                say(game.hint(info))
                continue
            if word in SHOW_WORDS:
                say(game.show_text(obs, info))
                continue
            prev = obs
            obs, reward, terminated, truncated, info = game.env.step(game.to_answer(text, info))
            score.answers += 1
            score.reward += float(reward)
            say(f"[{info['outcome']}] reward {reward:+g} (total {score.reward:+g}): {info['feedback']}")
            done = bool(terminated or truncated)
            if done:
                score.episode_open = False
                score.wins += int(bool(info.get("success")))
                say(game.ending(info))
            else:
                update = game.changed(prev, obs, info)
                if update:
                    say(update)
        if not game.another or not _ask_another(game, read, say):
            return bye()
