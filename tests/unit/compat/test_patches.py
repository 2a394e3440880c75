from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from gateway.compat.patches import (
    Adapted,
    LearnedCapabilities,
    adapt_request,
    adapt_response,
    capability_refused,
    nearest_effort,
    rewrite_chat,
    rewrite_responses,
)
from gateway.config import Capabilities
from gateway.simulator import responses, rules
from gateway.simulator.openai_errors import SimError
from gateway.wire.errors import GatewayError

ALL = Capabilities(**{f.name: True for f in dataclasses.fields(Capabilities) if f.type == "bool"})
O1 = Capabilities(**{f.name: False for f in dataclasses.fields(Capabilities) if f.type == "bool"})


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "o1-preview", "messages": [{"role": "user", "content": "Hi"}], **extra}


def adapt(payload: dict[str, Any], caps: Capabilities = O1, **kw: Any) -> Adapted:
    before = copy.deepcopy(payload)
    adapted = adapt_request(payload, caps, **kw)
    assert payload == before, "adapt_request mutated its input"
    assert adapted.payload is not payload
    return adapted


def test_everything_supported_leaves_the_request_alone() -> None:
    payload = body(
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": "No emoji."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
        ],
        max_tokens=10,
        temperature=0.2,
        top_p=0.5,
        n=3,
        presence_penalty=1,
        frequency_penalty=1,
        logit_bias={"1": 2},
        stop=["\n"],
        logprobs=True,
        top_logprobs=2,
        parallel_tool_calls=False,
        stream=True,
        stream_options={"include_usage": True},
    )
    adapted = adapt(payload, ALL)
    assert adapted.payload == payload
    assert adapted.patches == ()
    assert not adapted.fake_stream
    assert adapted.stop == ()
    assert adapted.include_usage  # the proxy still needs to know, even for a native stream


def test_o1_multi_turn_folds_system_and_developer_into_first_user_message_in_order() -> None:
    payload = body(
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3+3?"},
        ]
    )
    adapted = adapt(payload)
    assert adapted.payload["messages"] == [
        {
            "role": "user",
            "content": "[Instructions]\nBe terse.\n\nNo emoji.\n[End of instructions]\n\n"
            "What is 2+2?",
        },
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert adapted.patches == ("system_messages", "developer_messages")
    assert rules.check(adapted.payload) is None


def test_instructions_prepend_a_text_part_to_list_content() -> None:
    parts = [{"type": "text", "text": "Part one"}, {"type": "text", "text": "Part two"}]
    payload = body(
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": parts},
        ]
    )
    adapted = adapt(payload)
    (message,) = adapted.payload["messages"]
    assert message["role"] == "user"
    assert message["content"] == [
        {"type": "text", "text": "[Instructions]\nAnswer in French.\n[End of instructions]\n\n"},
        *parts,
    ]
    assert rules.check(adapted.payload) is None


def test_instructions_without_a_user_message_become_one() -> None:
    adapted = adapt(body(messages=[{"role": "system", "content": "Tell a joke."}]))
    assert adapted.payload["messages"] == [
        {"role": "user", "content": "[Instructions]\nTell a joke.\n[End of instructions]"}
    ]
    assert rules.check(adapted.payload) is None


def test_a_later_instruction_joins_the_next_user_turn_not_the_first() -> None:
    payload = body(
        messages=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "system", "content": "Now switch to German."},
            {"role": "user", "content": "How are you?"},
        ]
    )
    messages = adapt(payload).payload["messages"]
    assert messages[0] == {"role": "user", "content": "Hi"}
    assert messages[2]["content"].startswith("[Instructions]\nNow switch to German.\n")
    assert messages[2]["content"].endswith("How are you?")
    assert len(messages) == 3


def test_developer_becomes_system_when_only_system_is_native() -> None:
    payload = body(
        messages=[{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    )
    adapted = adapt(payload, dataclasses.replace(ALL, developer_messages=False))
    assert adapted.payload["messages"][0] == {"role": "system", "content": "Be terse."}
    assert adapted.patches == ("developer_messages",)


def test_system_becomes_developer_when_only_developer_is_native() -> None:
    payload = body(
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}]
    )
    adapted = adapt(payload, dataclasses.replace(ALL, system_messages=False))
    assert adapted.payload["messages"][0] == {"role": "developer", "content": "Be terse."}
    assert adapted.patches == ("system_messages",)


@pytest.mark.parametrize(("given", "expected"), [(100, 4096), (4096, 4096), (20_000, 20_000)])
def test_max_tokens_becomes_max_completion_tokens_with_reasoning_headroom(
    given: int, expected: int
) -> None:
    adapted = adapt(body(max_tokens=given))
    assert "max_tokens" not in adapted.payload
    assert adapted.payload["max_completion_tokens"] == expected
    assert adapted.patches == ("max_tokens",)
    assert rules.check(adapted.payload) is None


def test_min_completion_tokens_is_configurable_and_explicit_max_completion_tokens_wins() -> None:
    assert (
        adapt(body(max_tokens=10), min_completion_tokens=25_000).payload["max_completion_tokens"]
        == 25_000
    )
    both = adapt(body(max_tokens=10, max_completion_tokens=50)).payload
    assert both["max_completion_tokens"] == 50
    assert "max_tokens" not in both


def test_at_effort_none_max_tokens_needs_no_room_for_reasoning() -> None:
    luna = dataclasses.replace(O1, reasoning_effort=("none", "low", "medium"))
    none = adapt(body(max_tokens=30, reasoning_effort="none"), luna)
    assert none.payload["max_completion_tokens"] == 30
    assert none.patches == ("max_tokens",)
    assert (
        adapt(body(max_tokens=30, reasoning_effort="low"), luna).payload["max_completion_tokens"]
        == 4096
    )
    # `none` moved to the nearest effort a model takes, or dropped (o1 always reasons): room.
    astra = dataclasses.replace(O1, reasoning_effort=("low", "medium"))
    for caps in (astra, dataclasses.replace(O1, reasoning_effort=())):
        fitted = adapt(body(max_tokens=30, reasoning_effort="none"), caps).payload
        assert fitted["max_completion_tokens"] == 4096


def test_max_tokens_kept_when_the_model_accepts_it() -> None:
    adapted = adapt(body(max_tokens=10), dataclasses.replace(O1, max_tokens=True))
    assert adapted.payload["max_tokens"] == 10
    assert "max_completion_tokens" not in adapted.payload


def test_sampling_params_dropped_and_patch_named_only_for_non_defaults() -> None:
    defaults = adapt(
        body(temperature=1, top_p=1, n=1, presence_penalty=0, frequency_penalty=0, logit_bias={})
    )
    assert defaults.payload == body()
    assert defaults.patches == ()

    changed = adapt(
        body(
            temperature=0.2,
            top_p=0.9,
            n=2,
            presence_penalty=0.5,
            frequency_penalty=-0.5,
            logit_bias={"50256": -100},
        )
    )
    assert changed.payload == body()
    assert changed.patches == (
        "temperature",
        "top_p",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
    )


@pytest.mark.parametrize(
    ("stop", "expected"),
    [("END", ("END",)), (["a", "", "b"], ("a", "b")), ([], ()), (None, ())],
)
def test_stop_is_removed_and_returned_for_post_processing(
    stop: Any, expected: tuple[str, ...]
) -> None:
    adapted = adapt(body(stop=stop))
    assert "stop" not in adapted.payload
    assert adapted.stop == expected
    assert adapted.patches == (("stop",) if expected else ())


def test_logprobs_and_parallel_tool_calls_dropped() -> None:
    adapted = adapt(body(logprobs=True, top_logprobs=3, parallel_tool_calls=True))
    assert adapted.payload == body()
    assert adapted.patches == ("logprobs", "top_logprobs", "parallel_tool_calls")
    quiet = adapt(body(logprobs=False))
    assert quiet.payload == body()
    assert quiet.patches == ()


def test_tools_and_response_format_stay_for_upstream_to_refuse() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    payload = body(tools=tools, tool_choice="auto", response_format={"type": "json_object"})
    adapted = adapt(payload)
    assert adapted.payload == payload
    error = rules.check(adapted.payload)
    assert error is not None
    assert error.status == 404


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": [{"type": "function", "function": {"name": "f"}}]},
        {
            "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": "json"}],
        },
        {"max_tokens": 10},
        {"stream": False},
    ],
)
def test_stream_options_without_stream_is_refused_as_upstream_refuses_it(
    extra: dict[str, Any],
) -> None:
    # Emulated tools or structured output never stream upstream, so the option would be lost.
    payload = body(stream_options={"include_usage": True}, **extra)
    upstream = rules.check(payload)
    assert upstream is not None and upstream.param == "stream_options"
    with pytest.raises(GatewayError) as refused:
        rewrite_chat(payload, O1, min_completion_tokens=4096)
    assert refused.value.status == upstream.status == 400
    assert (refused.value.message, refused.value.code) == (upstream.message, upstream.code)
    streamed = {**payload, "stream": True}
    assert rewrite_chat(streamed, O1, min_completion_tokens=4096).adapted is not None


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tool_choice": "none"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({"tool_choice": "required", "tools": []}, "tool_choice"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": False, "top_logprobs": 0}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": -1}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 2.5}, "top_logprobs"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"logit_bias": {"AI": 10}}, "logit_bias"),
        ({"logit_bias": {"-1": 10}}, "logit_bias"),
        ({"logit_bias": "50256"}, "logit_bias"),
        ({"logit_bias": {"50256": 101}}, "logit_bias.50256"),
        ({"logit_bias": {"50256": -100.5}}, "logit_bias.50256"),
        ({"logit_bias": {"50256": "-100"}}, "logit_bias.50256"),
        ({"logit_bias": {"50256": None}}, "logit_bias.50256"),
        ({"logit_bias": {str(token): 1 for token in range(1025)}}, "logit_bias"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"parallel_tool_calls": True}, "parallel_tool_calls"),
        ({"parallel_tool_calls": False, "tools": []}, "parallel_tool_calls"),
    ],
)
def test_a_value_every_model_taking_it_refuses_is_refused_as_upstream_refuses_it(
    extra: dict[str, Any], param: str
) -> None:
    # o1 takes none of these parameters, so the patches would drop them unseen; a model that
    # takes them (gpt-4o upstream) refuses the value.
    upstream = rules.check(body(model="gpt-4o", **extra))
    assert upstream is not None and upstream.param == param
    for caps in (O1, ALL):
        with pytest.raises(GatewayError) as refused:
            rewrite_chat(body(**extra), caps, min_completion_tokens=4096)
        assert (refused.value.status, refused.value.message) == (upstream.status, upstream.message)
        assert (refused.value.param, refused.value.code) == (upstream.param, upstream.code)


def test_values_every_model_takes_are_still_patched_away() -> None:
    payload = body(
        tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="auto",
        logprobs=True, top_logprobs=20, parallel_tool_calls=False,
        logit_bias={"50256": -100, "1": 100, "2": 0.5, **{str(t): 1 for t in range(3, 1024)}},
    )  # fmt: skip
    assert rules.check({**payload, "model": "gpt-4o"}) is None
    sent = rewrite_chat(payload, O1, min_completion_tokens=4096).payload
    assert not {"tool_choice", "logprobs", "top_logprobs", "logit_bias"} & sent.keys()


def test_json_object_without_the_word_json_is_a_capability_patch_on_o1() -> None:
    # o1 refuses `response_format` before it would look for the word (a model taking it
    # natively refuses the missing word instead), and the emulation asks for JSON itself.
    payload = body(model="o1-mini", response_format={"type": "json_object"})
    on_o1, native = rules.check(payload), rules.check({**payload, "model": "gpt-4o"})
    assert on_o1 is not None and on_o1.param == "response_format"
    assert native is not None and native.param == "messages"
    rewritten = rewrite_chat(payload, O1, min_completion_tokens=4096)
    assert rewritten.emulated is not None
    assert "JSON" in rewritten.payload["messages"][0]["content"]


def test_stream_is_faked_when_the_model_cannot_stream() -> None:
    adapted = adapt(body(stream=True, stream_options={"include_usage": True}))
    assert adapted.fake_stream
    assert adapted.include_usage
    assert adapted.payload == body()
    assert adapted.patches == ("stream",)
    plain = adapt(body(stream=True))
    assert plain.fake_stream
    assert not plain.include_usage
    assert not adapt(body(stream=False)).fake_stream


def test_a_stop_sequence_on_a_streaming_model_fakes_the_stream_so_it_can_be_cut() -> None:
    caps = dataclasses.replace(O1, streaming=True)
    assert not adapt(body(stream=True), caps).fake_stream
    adapted = adapt(body(stream=True, stop=["\n"]), caps)
    assert adapted.fake_stream
    assert adapted.patches == ("stop", "stream")


def test_images_refused_with_an_openai_error_only_without_image_support() -> None:
    payload = body(
        messages=[
            {"role": "user", "content": "first"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                ],
            },
        ]
    )
    with pytest.raises(GatewayError) as refused:
        adapt(payload)
    assert refused.value.status == 400
    assert refused.value.type == "invalid_request_error"
    assert refused.value.param == "messages.[1].content.[1].type"
    assert refused.value.code == "unsupported_content"
    assert "image" in refused.value.message

    adapt(payload, dataclasses.replace(O1, images=True))  # accepted: no error raised


def test_o1_request_with_every_problem_passes_the_simulated_o1_checks() -> None:
    payload = body(
        messages=[
            {"role": "system", "content": "s"},
            {"role": "developer", "content": "d"},
            {"role": "user", "content": "u"},
        ],
        max_tokens=100,
        temperature=0.3,
        top_p=0.3,
        n=1,
        presence_penalty=1,
        frequency_penalty=1,
        logprobs=True,
        top_logprobs=1,
        stop="x",
        stream=True,
        stream_options={"include_usage": True},
    )
    assert rules.check(payload) is not None
    assert rules.check(adapt(payload).payload) is None


def completion(content: str | None, finish: str = "length") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1726000000,
        "model": "o1-mini-2024-09-12",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
        "system_fingerprint": "fp_f7eab99a33",
    }


def test_stop_cuts_the_answer_at_the_earliest_stop_sequence() -> None:
    adapted = adapt(body(stop=["END", "\n\n"]))
    upstream = completion("one\n\ntwo END three")
    before = copy.deepcopy(upstream)
    result = adapt_response(upstream, adapted)
    assert upstream == before
    assert result["choices"][0]["message"]["content"] == "one"
    assert result["choices"][0]["finish_reason"] == "stop"
    for key in ("id", "created", "model", "usage", "system_fingerprint", "object"):
        assert result[key] == upstream[key]


def test_answer_without_a_stop_sequence_or_content_is_unchanged() -> None:
    adapted = adapt(body(stop="END"))
    for content in ("nothing to cut", None):
        upstream = completion(content)
        result = adapt_response(upstream, adapted)
        assert result == upstream
        assert result is not upstream


@pytest.mark.parametrize(
    ("status", "error", "capability"),
    [
        (400, {"param": "messages[0].role", "code": "unsupported_value",
               "message": "Unsupported value: 'messages[0].role' does not support 'system' with this model."},
         "system_messages"),
        (400, {"param": "messages[2].role", "code": "unsupported_value",
               "message": "... does not support 'developer' with this model."}, "developer_messages"),
        (400, {"param": "stream", "code": "unsupported_value", "message": "..."}, "streaming"),
        (400, {"param": "max_tokens", "code": "unsupported_parameter", "message": "..."}, "max_tokens"),
        (400, {"param": "temperature", "code": "unsupported_value", "message": "..."}, "sampling_params"),
        (400, {"param": "top_logprobs", "code": "unsupported_parameter", "message": "..."}, "logprobs"),
        (400, {"param": "messages", "code": "context_length_exceeded", "message": "..."}, None),
        (400, {"param": "response_format", "code": None, "message": "..."}, None),
        (429, {"param": "stream", "code": "unsupported_value", "message": "..."}, None),
    ],
)  # fmt: skip
def test_capability_refused_reads_the_upstream_error(
    status: int, error: dict[str, Any], capability: str | None
) -> None:
    assert (
        capability_refused(status, {"error": {"type": "invalid_request_error", **error}})
        == capability
    )


def test_learned_capabilities_expire() -> None:
    learned = LearnedCapabilities(ttl_s=10)
    caps = Capabilities()
    mini = ("team", "o1-mini", None)
    assert learned.effective(mini, caps, now=0) is caps
    updated = learned.learn(mini, caps, "streaming", now=0)
    assert updated.streaming is False and updated.system_messages is True
    assert learned.effective(mini, caps, now=9.9) == updated
    assert learned.effective(("team", "gpt-4o", None), caps, now=5) is caps
    assert learned.effective(mini, caps, now=10) is caps


def test_a_lesson_holds_for_its_team_and_effort_only() -> None:
    learned = LearnedCapabilities(ttl_s=10)
    caps = Capabilities()
    learned.learn(("noisy", "gpt-6-luna", "high"), caps, "sampling_params", now=0)
    assert learned.effective(("noisy", "gpt-6-luna", "high"), caps, now=1).sampling_params is False
    for other in (("quiet", "gpt-6-luna", "high"), ("noisy", "gpt-6-luna", "none")):
        assert learned.effective(other, caps, now=1) is caps


def test_learned_capabilities_forget_the_oldest_lesson_when_full() -> None:
    learned = LearnedCapabilities(ttl_s=10, max_entries=2)
    caps = Capabilities()
    for team in ("a", "b", "c"):
        learned.learn((team, "o1-mini", None), caps, "streaming", now=0)
    assert learned.effective(("a", "o1-mini", None), caps, now=1) is caps
    assert learned.effective(("c", "o1-mini", None), caps, now=1).streaming is False
    assert len(learned._learned) == 2


# -- the Responses API, for a model that serves it ------------------------------------------------


def test_responses_patches_drop_what_the_model_refuses_and_say_so() -> None:
    payload = {
        "model": "o1", "input": "Hi", "reasoning": {"effort": "high"}, "temperature": 0.2,
        "top_p": 1, "top_logprobs": 3, "parallel_tool_calls": False,
    }  # fmt: skip
    out, made = rewrite_responses(payload, O1, reasoning=False)
    assert out == {"model": "o1", "input": "Hi"}
    # top_p at its default changed nothing: not listed.
    assert made == ("reasoning", "temperature", "top_logprobs", "parallel_tool_calls")
    assert payload["temperature"] == 0.2  # the input is left as it was


def test_responses_patches_leave_a_capable_model_alone() -> None:
    payload = {"model": "o3", "input": "Hi", "reasoning": {"effort": "high"}, "temperature": 1}
    assert rewrite_responses(payload, ALL, reasoning=True) == (payload, ())
    # An empty reasoning object asks for nothing: dropped without a patch.
    out, made = rewrite_responses({"input": "Hi", "reasoning": {}}, ALL, reasoning=False)
    assert out == {"input": "Hi"} and made == ()


def test_an_effort_the_model_lacks_becomes_the_nearest_it_takes() -> None:
    astra = ("low", "medium", "high", "xhigh", "max")
    assert nearest_effort("minimal", astra) == "low"
    assert nearest_effort("high", astra) == "high"
    assert nearest_effort("xhigh", ("low", "medium", "high")) == "high"
    assert nearest_effort("medium", ("low", "high")) == "high"  # a tie goes up
    assert nearest_effort("high", ()) is None
    assert nearest_effort("turbo", astra) is None


@pytest.mark.parametrize("effort", ["turbo", 3, ["high"]])
def test_an_effort_no_model_takes_is_refused_where_the_patch_would_drop_it(effort: Any) -> None:
    # A model taking no effort has it dropped; one taking efforts (gpt-6-astra) refuses this.
    takes_none = dataclasses.replace(O1, reasoning_effort=())
    chat = rules.check(body(model="gpt-6-astra", reasoning_effort=effort))
    assert chat is not None and chat.param == "reasoning_effort"
    with pytest.raises(GatewayError) as refused:
        adapt_request(body(reasoning_effort=effort), takes_none)
    assert (refused.value.message, refused.value.param) == (chat.message, chat.param)
    asked = {"model": "gpt-6-astra", "input": "Hi", "reasoning": {"effort": effort}}
    model = responses.resolve_model(asked)
    assert not isinstance(model, SimError)
    native = responses.check(asked, model)
    assert native is not None and native.param == "reasoning.effort"
    for caps, reasons in ((ALL, False), (takes_none, True)):
        with pytest.raises(GatewayError) as refused:
            rewrite_responses(asked, caps, reasoning=reasons)
        assert (refused.value.message, refused.value.param) == (native.message, native.param)


def test_chat_efforts_are_fitted_dropped_or_left_alone() -> None:
    takes = dataclasses.replace(ALL, reasoning_effort=("low", "medium", "high"))
    fitted = adapt_request({"model": "m", "reasoning_effort": "none"}, takes)
    assert (fitted.payload["reasoning_effort"], fitted.patches) == ("low", ("reasoning_effort",))
    kept = adapt_request({"model": "m", "reasoning_effort": "high"}, takes)
    assert (kept.payload["reasoning_effort"], kept.patches) == ("high", ())
    # Not an effort at all: upstream refuses it in its own words.
    odd = adapt_request({"model": "m", "reasoning_effort": "turbo"}, takes)
    assert (odd.payload["reasoning_effort"], odd.patches) == ("turbo", ())
    none = dataclasses.replace(ALL, reasoning_effort=())
    dropped = adapt_request({"model": "m", "reasoning_effort": "high"}, none)
    assert "reasoning_effort" not in dropped.payload and dropped.patches == ("reasoning_effort",)
    # A model whose table does not say passes the client's effort on as it is.
    assert adapt_request({"model": "m", "reasoning_effort": "x"}, ALL).payload == {
        "model": "m", "reasoning_effort": "x"
    }  # fmt: skip


def test_responses_efforts_are_fitted() -> None:
    takes = dataclasses.replace(ALL, reasoning_effort=("low", "medium", "high", "xhigh", "max"))
    payload = {"model": "m", "input": "Hi", "reasoning": {"effort": "minimal", "summary": "auto"}}
    out, patched = rewrite_responses(payload, takes, reasoning=True)
    assert out["reasoning"] == {"effort": "low", "summary": "auto"}
    assert patched == ("reasoning.effort",)
    assert payload["reasoning"]["effort"] == "minimal"  # the client's request is not changed
