from sftvsrl.envs.revision import MAX_ECHOED_ANSWER_CHARS, RevisionState


def test_first_prompt_then_history_in_order():
    state = RevisionState("Solve it.")
    assert state.prompt() == "Solve it." and state.turns == 0
    state.add("answer one", "wrong: uses 3 twice")
    state.add("answer two", "wrong value")
    text = state.prompt()
    assert text.startswith("Solve it.")
    assert text.index("answer one") < text.index("wrong: uses 3 twice") < text.index("answer two")
    assert "[Attempt 2]" in text and state.turns == 2


def test_long_answers_are_clipped_when_echoed():
    state = RevisionState("p")
    state.add("x" * 1_000_000, "illegal format")
    assert len(state.prompt()) < MAX_ECHOED_ANSWER_CHARS + 300
