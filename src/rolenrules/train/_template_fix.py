"""Template rewrites behind the audit's fixes.

Two fixes, both verified by rendering afterwards rather than trusted:

* `merge_system`: a preamble that folds a system message into the first user turn, for
  templates that reject (or drop) the system role, as Gemma's do. Prepended to the template, so
  training and inference render the same text.
* `add_generation_markers`: a copy of the template whose assistant replies (and end-of-turn
  token) sit inside `{% generation %}` markers, which transformers needs to return the assistant
  mask TRL's assistant-only loss uses. Known templates get TRL's curated training template;
  any other template is re-derived from how it renders sentinel conversations (per-role header
  and footer, preamble, generation prompt) and accepted only if it renders every probe
  conversation exactly as the original does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: Folds a leading system message into the first user turn (separated by a blank line).
MERGE_SYSTEM_PREAMBLE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- if messages | length > 1 and messages[1]['role'] == 'user' -%}"
    "{%- set messages = [{'role': 'user', 'content': messages[0]['content'] + '\\n\\n' + messages[1]['content']}]"
    " + messages[2:] -%}"
    "{%- else -%}"
    "{%- set messages = [{'role': 'user', 'content': messages[0]['content']}] + messages[1:] -%}"
    "{%- endif -%}"
    "{%- endif -%}"
)

Render = Callable[[list[dict[str, str]], bool], str]


class TemplateFixError(Exception):
    """A template whose structure the generic marker fix cannot reproduce exactly."""


def _lit(text: str) -> str:
    # Jinja string literals decode backslash escapes like JSON's, so a JSON string is a safe literal.
    return json.dumps(text, ensure_ascii=False)


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _after(text: str, marker: str) -> str:
    at = text.find(marker)
    if at < 0:
        raise TemplateFixError(f"the template does not render message content verbatim ({marker!r} missing)")
    return text[at + len(marker):]


def _between(text: str, first: str, second: str) -> str:
    rest = _after(text, first)
    at = rest.find(second)
    if at < 0:
        raise TemplateFixError(f"the template does not render message content verbatim ({second!r} missing)")
    return rest[:at]


def _strip_prefix(text: str, prefix: str, what: str) -> str:
    if not text.startswith(prefix):
        raise TemplateFixError(f"{what} differs between turns ({text!r} does not start with {prefix!r})")
    return text[len(prefix):]


def _strip_suffix(text: str, suffix: str, what: str) -> str:
    if suffix and not text.endswith(suffix):
        raise TemplateFixError(f"{what} differs between turns ({text!r} does not end with {suffix!r})")
    return text[: len(text) - len(suffix)] if suffix else text


def split_end_of_turn(footer: str, added_tokens: list[str]) -> tuple[str, str]:
    """Split an assistant footer after its first special token: that token is trained, the rest is not."""
    best: tuple[int, int] | None = None
    for token in added_tokens:
        at = footer.find(token)
        if at >= 0 and (best is None or at < best[0] or (at == best[0] and len(token) > best[1])):
            best = (at, len(token))
    if best is None:
        return footer, ""
    cut = best[0] + best[1]
    return footer[:cut], footer[cut:]


def _derive_parts(render: Render, with_system: bool) -> dict[str, str]:
    s, u1, a1, u2, a2 = "QQSYSQQ", "QQUSERONEQQ", "QQASSTONEQQ", "QQUSERTWOQQ", "QQASSTTWOQQ"
    convo = render([_msg("user", u1), _msg("assistant", a1), _msg("user", u2), _msg("assistant", a2)], False)
    lone_user = render([_msg("user", u1)], False)
    lone_user_gen = render([_msg("user", u1)], True)

    foot_a = _after(convo, a2)
    foot_u = _after(lone_user, u1)
    head_u = _strip_prefix(_between(convo, a1, u2), foot_a, "the assistant footer")
    head_a = _strip_prefix(_between(convo, u1, a1), foot_u, "the user footer")
    gen_prompt = _strip_prefix(_after(lone_user_gen, u1), foot_u, "the user footer")
    # What precedes the first user turn when there is no system message: a BOS token, and for
    # some templates a default or dated system block of their own.
    preamble = _strip_suffix(convo[: convo.find(u1)], head_u, "the user header")
    parts = {"preamble": preamble, "head_u": head_u, "foot_u": foot_u, "head_a": head_a, "foot_a": foot_a,
             "gen_prompt": gen_prompt}
    if with_system:
        # A system message is only ever first; its opening may replace the no-system preamble.
        sys_convo = render([_msg("system", s), _msg("user", u1), _msg("assistant", a1)], False)
        if s not in sys_convo:
            raise TemplateFixError("the template does not render the system message verbatim")
        parts["sys_open"] = sys_convo[: sys_convo.find(s)]
        parts["sys_close"] = _strip_suffix(_between(sys_convo, s, u1), head_u, "the user header")
    return parts


def build_marked_template(parts: dict[str, str], added_tokens: list[str]) -> str:
    trained, untrained = split_end_of_turn(parts["foot_a"], added_tokens)
    if "sys_open" in parts:
        start = ("{%- if messages and messages[0]['role'] == 'system' -%}"
                 f"{{{{ {_lit(parts['sys_open'])} + messages[0]['content'] + {_lit(parts['sys_close'])} }}}}"
                 "{%- set turns = messages[1:] -%}"
                 f"{{%- else -%}}{{{{ {_lit(parts['preamble'])} }}}}{{%- set turns = messages -%}}{{%- endif -%}}")
    else:
        start = f"{{{{ {_lit(parts['preamble'])} }}}}{{%- set turns = messages -%}}"
    user = f"{{{{ {_lit(parts['head_u'])} + message['content'] + {_lit(parts['foot_u'])} }}}}"
    assistant = (f"{{{{ {_lit(parts['head_a'])} }}}}{{% generation %}}{{{{ message['content'] + {_lit(trained)} }}}}"
                 f"{{% endgeneration %}}{{{{ {_lit(untrained)} }}}}")
    loop = ("{%- for message in turns -%}"
            f"{{%- if message['role'] == 'user' -%}}{user}"
            f"{{%- elif message['role'] == 'assistant' -%}}{assistant}"
            "{%- else -%}{{ raise_exception('unsupported role here: ' + message['role']) }}{%- endif -%}"
            "{%- endfor -%}")
    return start + loop + f"{{%- if add_generation_prompt -%}}{{{{ {_lit(parts['gen_prompt'])} }}}}{{%- endif -%}}"


def probe_conversations(with_system: bool) -> list[tuple[list[dict[str, str]], bool]]:
    """Conversations (and whether to add the generation prompt) on which a rewrite must match the original."""
    system = [_msg("system", "You are Ava.\nRules:\n1. Be brief.")] if with_system else []
    u1, a1 = _msg("user", "Name a fruit."), _msg("assistant", "An apple.\nOr a pear.")
    u2, a2 = _msg("user", "Another?"), _msg("assistant", "A cherry.")
    shapes = [[u1], [u1, a1], [u1, a1, u2], [u1, a1, u2, a2]]
    out: list[tuple[list[dict[str, str]], bool]] = []
    for prefix in ([[]] + ([system] if with_system else [])):
        for shape in shapes:
            convo = prefix + shape
            out.append((convo, False))
            if convo[-1]["role"] == "user":
                out.append((convo, True))
    return out


def add_generation_markers(render_with: Callable[[str, list[dict[str, str]], bool], str], template: str,
                           *, with_system: bool, added_tokens: list[str]) -> str:
    """A generation-marked template that renders exactly like `template` (else TemplateFixError)."""

    def render(messages: list[dict[str, str]], gen: bool) -> str:
        return render_with(template, messages, gen)

    try:
        parts = _derive_parts(render, with_system)
    except TemplateFixError:
        raise
    except Exception as error:  # a template that raises on the probes cannot be re-derived
        raise TemplateFixError(f"rendering the probe conversations failed: {error}") from None
    marked = build_marked_template(parts, added_tokens)
    for messages, gen in probe_conversations(with_system):
        want = render(messages, gen)
        got = render_with(marked, messages, gen)
        if got != want:
            raise TemplateFixError(f"a marked copy does not render like the original (for {len(messages)} messages, "
                                   f"add_generation_prompt={gen}: {got!r} != {want!r})")
    return marked


def trl_training_template(tokenizer: Any, template: str) -> str | None:
    """TRL's curated training template for a known chat template, or None when TRL has none."""
    try:
        from trl.chat_template_utils import get_training_chat_template
    except ImportError:
        return None
    saved = tokenizer.chat_template
    try:
        tokenizer.chat_template = template
        return get_training_chat_template(tokenizer)
    except Exception:  # TRL raises ValueError for templates it does not know; anything else means "no help here"
        return None
    finally:
        tokenizer.chat_template = saved
