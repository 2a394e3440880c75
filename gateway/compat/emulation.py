"""Tools and structured output for models that lack them, emulated by prompting.

o1-preview and o1-mini refuse `tools`, `functions`, `response_format` and `role: "tool"`
messages (their launch limits, September 2024). As inspect_ai and cline emulate tools, the
request is rewritten to describe the tools in a leading `system` message (`patches` later merges
it into the user turn) and the model is asked to answer with
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, which are parsed back into
real `tool_calls`. Unlike them, the answer is checked against the declared tools, `tool_choice`
and the JSON schemas, so a malformed answer becomes a precise error that can be fed back to the
model for one repair attempt instead of reaching the client.

Pure: no I/O and no clock; tool call ids are supplied by the caller.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gateway.config import Capabilities
from gateway.wire import errors

__all__ = [
    "Emulation",
    "EmulationError",
    "Parsed",
    "apply",
    "emulate_request",
    "format_tool_call",
    "parse_answer",
    "repair_messages",
]

_TOOL_KEYS = ("tools", "tool_choice", "functions", "function_call", "parallel_tool_calls")
_BLOCK = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
# Models often wrap JSON in a markdown fence even when told not to; the fence carries no meaning.
_FENCE = re.compile(r"\A\s*```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?\s*```\s*\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Emulation:
    """What a rewritten request asked of the model, needed to check and convert its answer."""

    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = "auto"
    response_format: dict[str, Any] | None = None
    patches: tuple[str, ...] = ()
    # The client asked for one call at most (`parallel_tool_calls: false`).
    one_call: bool = False

    @property
    def legacy_functions(self) -> bool:
        """The client used `functions`, so it expects `message.function_call` back."""
        return "functions" in self.patches

    @property
    def single(self) -> bool:
        """An answer may make one call at most: the client said so, or it reads
        `message.function_call`, which holds one."""
        return self.one_call or self.legacy_functions


@dataclass(frozen=True, slots=True)
class Parsed:
    """The model's answer converted to what the client asked for."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: Literal["tool_calls", "stop", "function_call"]


@dataclass(frozen=True, slots=True)
class EmulationError:
    """Why an answer broke the requested format, worded to be shown to the model."""

    message: str
    # The format the model was asked for, restated in a repair request; empty when unknown.
    reminder: str = ""


# --- request ---------------------------------------------------------------------------------


def emulate_request(
    payload: dict[str, Any], caps: Capabilities
) -> tuple[dict[str, Any], Emulation | None]:
    """Rewrite `payload` so a model without tools/structured output can still serve it.

    Returns a new payload (the input is never mutated) and what was emulated, or None when the
    request needed no change.
    """
    out = dict(payload)
    patches: list[str] = []
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = "auto"
    response_format: dict[str, Any] | None = None

    if not caps.tools:
        tools, tool_choice, legacy = _requested_tools(payload)
        if payload.get("tool_choice") is not None or payload.get("function_call") is not None:
            _check_forced(payload, tools)
        had_choice = payload.get("tool_choice") is not None or (
            legacy and payload.get("function_call") is not None
        )
        for key in _TOOL_KEYS:
            out.pop(key, None)
        if legacy and tools:
            patches.append("functions")
        if tools:
            patches.append("tools")
        if tool_choice == "none":
            # The client forbade calls, so the tools need no description: dropping them is exact.
            tools = ()
        elif tools and had_choice:
            patches.append("tool_choice")

        messages = payload.get("messages")
        if isinstance(messages, list):
            rewritten = _rewrite_history(messages)
            if rewritten is not None:
                out["messages"] = rewritten
                patches.append("tool_messages")

    requested = payload.get("response_format")
    if isinstance(requested, dict):
        kind = requested.get("type")
        unsupported = not caps.response_format or (kind == "json_schema" and not caps.json_schema)
        if kind in ("json_object", "json_schema") and unsupported:
            response_format = requested
        elif kind == "text" and not caps.response_format:
            # Plain text is what the model produces anyway; only the parameter must go.
            out.pop("response_format")
        if response_format is not None:
            out.pop("response_format")
            patches.append("response_format")

    if not patches:
        return out, None
    emulation = Emulation(
        tools=tools,
        tool_choice=tool_choice if tools else "none",
        response_format=response_format,
        patches=tuple(patches),
        one_call=bool(tools) and payload.get("parallel_tool_calls") is False,
    )
    instructions = _instructions(emulation)
    if instructions:
        messages = out.get("messages")
        prior = messages if isinstance(messages, list) else []
        out["messages"] = [{"role": "system", "content": instructions}, *prior]
    return out, emulation


def _requested_tools(payload: dict[str, Any]) -> tuple[tuple[dict[str, Any], ...], Any, bool]:
    """The function tools and tool_choice, with legacy `functions` converted to tools."""
    tools = payload.get("tools")
    if isinstance(tools, list) and tools:
        functions = tuple(
            t for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
        )
        requested = payload.get("tool_choice")
        return functions, "auto" if requested is None else requested, False
    legacy = payload.get("functions")
    if isinstance(legacy, list) and legacy:
        converted = tuple(
            {"type": "function", "function": f} for f in legacy if isinstance(f, dict)
        )
        call = payload.get("function_call")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            choice: Any = {"type": "function", "function": {"name": call["name"]}}
        else:
            choice = "auto" if call is None else call
        return converted, choice, True
    return (), "auto", False


def _rewrite_history(messages: list[Any]) -> list[Any] | None:
    """Tool traffic in the history as plain user/assistant text; None when there was none."""
    names: dict[str, str] = {}
    out: list[Any] = []
    changed = False
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        role = message.get("role")
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            out.append(_assistant_as_text(message, names))
            changed = True
        elif role == "tool":
            call_id = str(message.get("tool_call_id", ""))
            name = names.get(call_id)
            label = f"{call_id} ({name})" if name else call_id
            text = _text(message.get("content"))
            out.append({"role": "user", "content": f"[Result of tool call {label}]\n{text}"})
            changed = True
        elif role == "function":
            text = _text(message.get("content"))
            header = f"[Result of function call {message.get('name', '')}]"
            out.append({"role": "user", "content": f"{header}\n{text}"})
            changed = True
        else:
            out.append(message)
    return out if changed else None


def _assistant_as_text(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    calls: list[tuple[str, Any]] = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        name = str(function.get("name", ""))
        names[str(call.get("id", ""))] = name
        calls.append((name, function.get("arguments")))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append((str(legacy.get("name", "")), legacy.get("arguments")))
    blocks = "\n".join(format_tool_call(name, _decoded(arguments)) for name, arguments in calls)
    text = _text(message.get("content"))
    rewritten = {
        k: v for k, v in message.items() if k not in ("tool_calls", "function_call", "content")
    }
    rewritten["content"] = f"{text}\n\n{blocks}" if text else blocks
    return rewritten


def _decoded(arguments: Any) -> Any:
    """History arguments are JSON strings; show them as objects so the examples match the format."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return {} if arguments is None else arguments


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return json.dumps(content)


def format_tool_call(name: str, arguments: Any) -> str:
    """One call in the emulated answer format; the history and the instructions share it."""
    body = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    # "</" only occurs inside JSON strings, where "<\/" means the same; unescaped, an argument
    # holding "</tool_call>" (code, HTML) would end the block early.
    return "<tool_call>" + body.replace("</", "<\\/") + "</tool_call>"


def _check_forced(payload: dict[str, Any], tools: tuple[dict[str, Any], ...]) -> None:
    """Refuse a `tool_choice` or legacy `function_call` that forces a function the request
    does not declare: no answer could honour it, nor a repair, so it is the client's 400 before
    any call, as OpenAI answers it, not a 502 after two."""
    declared = {tool["function"].get("name") for tool in tools}
    forced = _forced_name(payload.get("tool_choice"))
    if forced is not None and forced not in declared:
        raise errors.unknown_forced_function("tool_choice", forced)
    call = payload.get("function_call")
    if (
        isinstance(call, dict)
        and isinstance(call.get("name"), str)
        and call["name"] not in declared
    ):
        raise errors.unknown_forced_function("function_call", call["name"])


def _forced_name(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def _instructions(emulation: Emulation) -> str:
    parts: list[str] = []
    if emulation.tools:
        parts.append(_tool_instructions(emulation))
    if emulation.response_format is not None:
        parts.append(_format_instructions(emulation.response_format, bool(emulation.tools)))
    return "\n\n".join(parts)


def _tool_instructions(emulation: Emulation) -> str:
    lines = ["You can call the following tools (functions).", ""]
    for tool in emulation.tools:
        function = tool["function"]
        lines.append(f"## {function.get('name', '')}")
        if function.get("description"):
            lines.append(str(function["description"]))
        parameters = function.get("parameters")
        if parameters is not None:
            lines.append("Parameters (JSON Schema):")
            lines.append(json.dumps(parameters, indent=2, ensure_ascii=False))
        lines.append("")
    lines.append(_tool_format(emulation))
    return "\n".join(lines)


def _tool_format(emulation: Emulation) -> str:
    example = format_tool_call("TOOL_NAME", {"ARGUMENT": "VALUE"})
    lead = (
        "To call a tool, your whole reply must be ONLY one block of exactly this form (one call "
        "at most), with nothing before or after it:"
        if emulation.single
        else "To call tools, your whole reply must be ONLY one or more blocks of exactly this "
        "form, one per call, with nothing before, between or after them:"
    )
    rules = [
        lead,
        example,
        '"name" must be one of the tools above and "arguments" a JSON object matching that '
        "tool's parameters schema. Do not use code fences. The results will come back in a "
        'later message starting with "[Result of tool call ...]".',
    ]
    forced = _forced_name(emulation.tool_choice)
    if forced is not None:
        rules.append(f"You MUST call the tool `{forced}` now, and only that tool.")
    elif emulation.tool_choice == "required":
        rules.append("You MUST call at least one tool now: reply only with <tool_call> blocks.")
    else:
        rules.append("If no tool is needed, answer normally without any <tool_call> block.")
    return "\n".join(rules)


def _format_instructions(response_format: dict[str, Any], with_tools: bool) -> str:
    lead = "When you answer without calling a tool, your" if with_tools else "Your"
    lines = [
        f"{lead} answer must be a single JSON object only: no prose before or after it, "
        "no code fences, no comments."
    ]
    spec = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(spec, dict):
        if spec.get("description"):
            lines.append(str(spec["description"]))
        if spec.get("schema") is not None:
            lines.append("The object must match this JSON Schema:")
            lines.append(json.dumps(spec["schema"], indent=2, ensure_ascii=False))
    return "\n".join(lines)


def _reminder(emulation: Emulation) -> str:
    parts: list[str] = []
    if emulation.tools:
        parts.append(_tool_format(emulation))
    if emulation.response_format is not None:
        parts.append(_format_instructions(emulation.response_format, bool(emulation.tools)))
    return "\n\n".join(parts)


# --- answer ----------------------------------------------------------------------------------


# Finish reasons of an answer cut short: by the completion cap, or by the content filter.
CUT = frozenset({"length", "content_filter"})


def parse_answer(
    content: str | None,
    emulation: Emulation,
    call_ids: Sequence[str],
    finish_reason: Any = None,
) -> Parsed | EmulationError:
    """Check the model's answer against what was emulated and convert it for the client.

    `call_ids` supplies one id per tool call; an answer with more calls than ids is refused.
    An answer cut short (`finish_reason` in `CUT`) that breaks the format broke it only by
    being cut, which no repair fixes: it is what the model wrote, as OpenAI answers a cut
    (an unfinished `<tool_call>` block left out), and `apply` keeps the `finish_reason`.
    """
    parsed = _parse_answer(content, emulation, call_ids)
    if isinstance(parsed, EmulationError) and finish_reason in CUT:
        text = content
        if emulation.tools and text is not None and "<tool_call>" in text:
            text = text[: text.index("<tool_call>")].rstrip()
        return Parsed(content=text, tool_calls=None, finish_reason="stop")
    return parsed


def _parse_answer(
    content: str | None, emulation: Emulation, call_ids: Sequence[str]
) -> Parsed | EmulationError:
    reminder = _reminder(emulation)
    text = content or ""
    if emulation.tools:
        blocks = _BLOCK.findall(text)
        if blocks:
            return _parse_calls(blocks, emulation, call_ids, reminder)
        if "<tool_call>" in text:
            return EmulationError("A <tool_call> block was opened but never closed.", reminder)
        forced = _forced_name(emulation.tool_choice)
        if forced is not None:
            return EmulationError(
                f"You must call the tool `{forced}`, but the answer contained no <tool_call> block.",
                reminder,
            )
        if emulation.tool_choice == "required":
            return EmulationError(
                "You must call at least one tool, but the answer contained no <tool_call> block.",
                reminder,
            )
    if emulation.response_format is not None:
        return _parse_json(text, emulation.response_format, reminder)
    return Parsed(content=content, tool_calls=None, finish_reason="stop")


def _parse_calls(
    blocks: list[str], emulation: Emulation, call_ids: Sequence[str], reminder: str
) -> Parsed | EmulationError:
    declared = {str(t["function"].get("name")): t["function"] for t in emulation.tools}
    forced = _forced_name(emulation.tool_choice)
    limit = 1 if emulation.single else len(call_ids)
    if len(blocks) > limit:
        return EmulationError(f"Too many tool calls: at most {limit} allowed per answer.", reminder)
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        where = f"Tool call {index + 1}"
        try:
            call = json.loads(_unfenced(block))
        except ValueError as exc:
            return EmulationError(f"{where} is not valid JSON: {exc}.", reminder)
        if not isinstance(call, dict):
            return EmulationError(
                f"{where} must be a JSON object with name and arguments.", reminder
            )
        name = call.get("name")
        if not isinstance(name, str) or name not in declared:
            available = ", ".join(sorted(declared))
            return EmulationError(
                f"{where} names unknown tool {json.dumps(name)}; available tools: {available}.",
                reminder,
            )
        if forced is not None and name != forced:
            return EmulationError(
                f"{where} calls `{name}`, but only the tool `{forced}` may be called now.",
                reminder,
            )
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError as exc:
                return EmulationError(
                    f"{where} ({name}): arguments are not valid JSON: {exc}.", reminder
                )
        if not isinstance(arguments, dict):
            return EmulationError(f"{where} ({name}): arguments must be a JSON object.", reminder)
        problem = _schema_problem(arguments, declared[name].get("parameters"))
        if problem is not None:
            return EmulationError(
                f"{where} ({name}): arguments do not match the parameters schema: {problem}.",
                reminder,
            )
        compact = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
        calls.append(
            {
                "id": call_ids[index],
                "type": "function",
                "function": {"name": name, "arguments": compact},
            }
        )
    finish: Literal["tool_calls", "function_call"] = (
        "function_call" if emulation.legacy_functions else "tool_calls"
    )
    return Parsed(content=None, tool_calls=calls, finish_reason=finish)


def _parse_json(
    text: str, response_format: dict[str, Any], reminder: str
) -> Parsed | EmulationError:
    body = _unfenced(text).strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        return EmulationError(f"The answer is not valid JSON: {exc}.", reminder)
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else f"a {type(value).__name__}"
        return EmulationError(f"The answer must be a single JSON object, not {kind}.", reminder)
    spec = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(spec, dict):
        problem = _schema_problem(value, spec.get("schema"))
        if problem is not None:
            return EmulationError(f"The JSON does not match the schema: {problem}.", reminder)
    return Parsed(content=body, tool_calls=None, finish_reason="stop")


def _unfenced(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1) if match else text


def _schema_problem(instance: Any, schema: Any) -> str | None:
    """The most relevant violation as "at $.path: message", or None when valid or unknowable."""
    if not isinstance(schema, dict):
        return None
    # Imported here: only structured-output emulation needs it, and every worker would
    # otherwise carry it in memory.
    import jsonschema.exceptions
    import jsonschema.validators

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError:
        # A broken client schema says nothing about the answer; blaming the model would loop.
        return None
    error = jsonschema.exceptions.best_match(cls(schema).iter_errors(instance))
    if error is None:
        return None
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"at {path}: {error.message}"


# --- repair and response ---------------------------------------------------------------------


def repair_messages(
    messages: list[dict[str, Any]], bad_answer: str, error: EmulationError
) -> list[dict[str, Any]]:
    """The conversation for one repair attempt: the bad answer and what to fix."""
    feedback = f"Your previous answer could not be used: {error.message}"
    if error.reminder:
        feedback += f"\n\nReply again, following exactly this format:\n{error.reminder}"
    return [
        *messages,
        # An empty assistant turn would be refused upstream and tell the model nothing.
        {"role": "assistant", "content": bad_answer or "(empty answer)"},
        {"role": "user", "content": feedback},
    ]


def apply(completion: dict[str, Any], parsed: Parsed) -> dict[str, Any]:
    """A copy of `completion` whose first choice carries the parsed answer."""
    out = dict(completion)
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return out
    choice = dict(choices[0])
    message = dict(choice.get("message") or {"role": "assistant"})
    message.pop("tool_calls", None)
    message.pop("function_call", None)
    message["content"] = parsed.content
    finish: Any = parsed.finish_reason
    if parsed.tool_calls and parsed.finish_reason == "function_call":
        message["function_call"] = parsed.tool_calls[0]["function"]
    elif parsed.tool_calls:
        message["tool_calls"] = parsed.tool_calls
    elif choice.get("finish_reason") in CUT:
        # A cut-off plain answer is still cut off; "stop" would hide that from the client.
        finish = choice["finish_reason"]
    choice["message"] = message
    choice["finish_reason"] = finish
    out["choices"] = [choice, *choices[1:]]
    return out
