"""Chat turns inside one branch: the next user message is appended as forced tokens.

When the model ends its turn (the branch ends with an end-of-sequence token), the next user
message and the template's generation prompt are appended to the *same* branch as forced
tokens, so the conversation is one token sequence: branching works anywhere in it (inside an
earlier answer too), every file and replay keeps it, and the context is exactly what the chat
template would produce. Each appended step carries the note ``user turn`` (the first one
``user turn: <the message>``), which is how the conversation is read back from any branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tokentui.engine.errors import SessionError
from tokentui.engine.prompts import decode, encode_text, has_chat_template
from tokentui.engine.results import StepResult

if TYPE_CHECKING:
    from tokentui.engine.session import Branch, Session

USER_TURN = "user turn"
"""The note on every step of an appended user turn."""


def is_user_turn(step: StepResult) -> bool:
    return step.note is not None and step.note.startswith(USER_TURN)


def turn_start(steps: Sequence[StepResult]) -> int:
    """Index of the first step of the newest assistant turn (past the last user turn)."""
    for i in range(len(steps) - 1, -1, -1):
        if is_user_turn(steps[i]):
            return i + 1
    return 0


def prompt_messages(prompt: Any) -> list[dict[str, str]]:
    """The conversation a single prompt stands for (system, then user)."""
    out = []
    if prompt.system:
        out.append({"role": "system", "content": prompt.system})
    out.append({"role": "user", "content": prompt.text})
    return out


def conversation(session: Session, branch: Branch | None = None) -> list[dict[str, str]]:
    """The messages of a branch: the prompt's, then assistant and user turns in order.

    An assistant message is the decoded text of its turn without the closing end-of-sequence
    token; the last one is included when it has any text (it may still be growing).
    """
    branch = branch or session.current
    eos = set(session.backend.eos_token_ids)
    out = prompt_messages(session.prompt)
    steps = branch.steps
    start = 0
    i = 0
    while i < len(steps):
        if not is_user_turn(steps[i]):
            i += 1
            continue
        out.append({"role": "assistant", "content": _answer(session, steps[start:i], eos)})
        note = steps[i].note or ""
        out.append({"role": "user", "content": note.partition(": ")[2]})
        while i < len(steps) and is_user_turn(steps[i]):
            i += 1
        start = i
    last = _answer(session, steps[start:], eos)
    if last:
        out.append({"role": "assistant", "content": last})
    return out


def _answer(session: Session, steps: Sequence[StepResult], eos: set[int]) -> str:
    ids = [s.token.id for s in steps]
    if ids and ids[-1] in eos:
        ids = ids[:-1]
    return decode(session.tokenizer, ids)


def ended_turn(session: Session) -> bool:
    """The current branch ends with an end-of-sequence token (the model ended its turn)."""
    steps = session.current.steps
    return bool(steps) and steps[-1].token.id in set(session.backend.eos_token_ids) and \
        not is_user_turn(steps[-1])


def user_turn_ids(session: Session, text: str) -> list[int]:
    """The token ids that follow the current branch for the next user message.

    Exact: the chat template over the whole conversation plus ``text`` (with the generation
    prompt) must start with the branch's context ids, and the rest is returned. When the
    template re-tokenises an earlier answer differently, the rendered text after the decoded
    context is tokenised instead; a template that rewrites earlier turns is refused.
    """
    tok = session.tokenizer
    if not text.strip():
        raise SessionError("the message is empty")
    if not (session.prompt.chat_template and has_chat_template(tok)):
        raise SessionError("chat turns need the chat template (switch it on in the prompt pane)")
    if not ended_turn(session):
        raise SessionError("the model has not ended its turn: generate to the end first (g)")
    messages = [m for m in conversation(session) if m["content"] or m["role"] != "assistant"]
    messages.append({"role": "user", "content": text})
    ctx = session.context_ids()
    encoded = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    full = [int(i) for i in (encoded["input_ids"] if hasattr(encoded, "keys") else encoded)]
    if full[:len(ctx)] == ctx and len(full) > len(ctx):
        return full[len(ctx):]
    rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    before = tok.decode(ctx, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if isinstance(rendered, str) and rendered.startswith(before) and len(rendered) > len(before):
        return encode_text(tok, rendered[len(before):])
    raise SessionError("this chat template rewrites earlier turns, so the next turn cannot "
                       "extend the branch exactly")


def add_user_turn(session: Session, text: str) -> list[StepResult]:
    """Append the next user message (and the generation prompt) to the current branch."""
    with session.lock:
        ids = user_turn_ids(session, text)
        if session.constraint is not None:
            reason = session.constraint.refusal(session.current.ids, ids)
            if reason:
                raise SessionError(f"the constraint refuses the message: {reason}")
        branch = session.current
        made = []
        for k, token_id in enumerate(ids):
            step = session.step(force_id=token_id, how="forced")
            note = f"{USER_TURN}: {text}" if k == 0 else USER_TURN
            step = replace(step, note=note, finish_reason=None)
            branch.steps[-1] = step
            made.append(step)
        session.messages = conversation(session)
        return made
