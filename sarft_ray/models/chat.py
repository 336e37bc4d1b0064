"""Chat formatting: one prompt string per (system, user) pair, for any chat template.

Templates without a system role (Gemma's, for instance) get the system text in
front of the first user turn, as docs/method.md prescribes.

"No system prompt" (training inputs as the release renders them, the optional
no-system scoring pass, generation with ``system_prompt: none``) is an explicit
EMPTY system turn by default, as in the authors' release: templates such as
SmolLM2's and Qwen's otherwise insert their own default system text ("You are a
helpful AI assistant named SmolLM ..."). ``model.no_system_prompt:
template_default`` keeps the template's behaviour; the loader records the
choice on the tokenizer (``set_no_system_prompt``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sarft_ray.errors import SarftError

_SENTINEL = "\x1fsarft-system-probe\x1f"
NO_SYSTEM_RENDERINGS = ("empty_turn", "template_default")


def _name(tokenizer) -> str:
    return getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__


def require_chat_template(tokenizer) -> None:
    """Fail with one line when a tokenizer cannot format chats."""
    if not getattr(tokenizer, "chat_template", None):
        raise SarftError(f"{_name(tokenizer)}: tokenizer has no chat template; use an instruct/chat model")


def supports_system_role(tokenizer) -> bool:
    """True when the template renders a system turn (cached on the tokenizer)."""
    cached = getattr(tokenizer, "_sarft_supports_system", None)
    if cached is not None:
        return cached
    require_chat_template(tokenizer)
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": _SENTINEL}, {"role": "user", "content": "hi"}],
            tokenize=False,
            add_generation_prompt=True,
        )
        supported = _SENTINEL in text
    except Exception:  # jinja raise_exception and TemplateError both mean "no system role"
        supported = False
    tokenizer._sarft_supports_system = supported
    return supported


def set_no_system_prompt(tokenizer, rendering: str) -> None:
    """How this tokenizer renders "no system prompt": ``empty_turn`` (default) or ``template_default``."""
    if rendering not in NO_SYSTEM_RENDERINGS:
        raise SarftError(f"model.no_system_prompt: unknown rendering '{rendering}' (use {' or '.join(NO_SYSTEM_RENDERINGS)})")
    tokenizer._sarft_no_system_prompt = rendering


def chat_messages(tokenizer, user: str, system: str | None = None) -> list[dict[str, str]]:
    """Messages for one user turn, folding the system text into it when the template has no system role.

    Without a system prompt the messages start with an empty system turn
    (unless the tokenizer was set to ``template_default`` or its template has
    no system role), so no template default text slips in.
    """
    if not system:
        rendering = getattr(tokenizer, "_sarft_no_system_prompt", "empty_turn")
        if rendering == "empty_turn" and supports_system_role(tokenizer):
            return [{"role": "system", "content": ""}, {"role": "user", "content": user}]
        return [{"role": "user", "content": user}]
    if supports_system_role(tokenizer):
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return [{"role": "user", "content": f"{system}\n\n{user}"}]


def format_prompt(tokenizer, user: str, system: str | None = None) -> str:
    """The chat-formatted prompt up to and including the assistant header."""
    require_chat_template(tokenizer)
    return tokenizer.apply_chat_template(
        chat_messages(tokenizer, user, system), tokenize=False, add_generation_prompt=True
    )


@dataclass(frozen=True)
class EncodedPair:
    """Token ids of a chat prompt and of the answer that follows it."""

    prompt_ids: list[int]
    answer_ids: list[int]
    truncated: bool


def truncate_text(tokenizer, text: str, max_tokens: int) -> tuple[str, bool]:
    """Cut ``text`` to its first ``max_tokens`` tokens (decoded back to text)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return text, False
    return tokenizer.decode(ids[:max_tokens]), True


def encode_pair(
    tokenizer,
    user: str,
    answer: str,
    system: str | None = None,
    max_source_tokens: int = 512,
    max_target_tokens: int = 128,
) -> EncodedPair:
    """Tokenise a (question, answer) pair under a system prompt.

    ``max_source_tokens`` limits the question text (the system prompt and the
    template markup are kept whole so a role's prefix stays identical across
    samples); ``max_target_tokens`` limits the answer including the end-of-turn
    token, which is appended when the answer is not cut.
    """
    question, cut_source = truncate_text(tokenizer, user, max_source_tokens)
    prompt_ids = tokenizer(format_prompt(tokenizer, question, system), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    if eos is not None:
        answer_ids = answer_ids + [eos]
    cut_target = len(answer_ids) > max_target_tokens
    return EncodedPair(prompt_ids, answer_ids[:max_target_tokens], cut_source or cut_target)
