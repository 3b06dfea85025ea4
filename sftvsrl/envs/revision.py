"""Sequential revision: the prompt of turn k is the first prompt plus every earlier
(answer, feedback) pair, in order. Shared by every task so that all of them build
multi-turn prompts the same way (the paper's verification loop)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Earlier answers are echoed back into the next prompt; a hostile 1 MB answer must not
# make every later prompt 1 MB long, so echoed answers are clipped.
MAX_ECHOED_ANSWER_CHARS = 600


def clip_answer(answer: str, limit: int = MAX_ECHOED_ANSWER_CHARS) -> str:
    """Shorten an answer for echoing, marking that it was cut."""
    if len(answer) <= limit:
        return answer
    return answer[:limit] + f"... [{len(answer) - limit} more characters cut]"


@dataclass
class RevisionState:
    """The first prompt of an episode (or of a V-IRL step) and the turns answered since."""

    first_prompt: str
    history: list[tuple[str, str]] = field(default_factory=list)

    @property
    def turns(self) -> int:
        return len(self.history)

    def add(self, answer: str, feedback: str) -> None:
        self.history.append((answer, feedback))

    def prompt(self) -> str:
        """The text the model sees next."""
        if not self.history:
            return self.first_prompt
        parts = [self.first_prompt]
        for turn, (answer, feedback) in enumerate(self.history, start=1):
            parts.append(
                f"\n\n[Attempt {turn}]\nYour answer: {clip_answer(answer.strip())}\nFeedback: {feedback}"
            )
        parts.append("\n\nUse the feedback and answer again in the required format.")
        return "".join(parts)
