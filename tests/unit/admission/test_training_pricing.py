"""Fine-tuning's cost math: the hold (a training file's tokens, the epochs asked for or assumed)
and the charge (tokens trained at the training price, rounded up once)."""

from __future__ import annotations

import json

from gateway.admission.pricing import (
    training_cost,
    training_epochs,
    training_file_tokens,
    training_method,
)
from gateway.config import ImageInputTokens
from gateway.simulator.fine_tuning import training_tokens
from gateway.wire.tokens import TOKENS_FOR_REPLY, TOKENS_PER_MESSAGE, count_messages, count_text

GPT_4O_TRAINING = 25_000_000  # $25 per 1M trained tokens
GPT_4O_MINI_TRAINING = 3_000_000
IMAGES = ImageInputTokens()  # gpt-4o's


def jsonl(*rows: object) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def test_training_is_charged_per_token_rounded_up_once() -> None:
    assert training_cost(1_000_000, GPT_4O_TRAINING) == 25_000_000
    assert training_cost(7, GPT_4O_MINI_TRAINING) == 21  # exact: $3/1M is 3 micro-dollars a token
    assert training_cost(1, 2_500_000) == 3  # 2.5 micro-dollars -> 3
    assert training_cost(0, GPT_4O_TRAINING) == 0
    assert training_cost(-5, GPT_4O_TRAINING) == 0  # nothing reported trained costs nothing


def test_epochs_held_are_the_most_of_the_method_and_legacy_fields_or_the_bound() -> None:
    assert training_epochs({}, 10) == 10
    assert training_epochs({"hyperparameters": {"n_epochs": "auto"}}, 10) == 10
    assert training_epochs({"hyperparameters": {"n_epochs": 4}}, 10) == 4
    method = {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 2}}}
    assert training_epochs({"method": method}, 10) == 2
    # Both given: upstream may read either, the most is held ("auto" the assumed bound).
    assert training_epochs({"method": method, "hyperparameters": {"n_epochs": 1}}, 10) == 2
    auto = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": "auto"}}}
    assert training_epochs({"method": auto, "hyperparameters": {"n_epochs": 4}}, 10) == 10
    assert training_epochs({"method": auto, "hyperparameters": {"n_epochs": 40}}, 10) == 40
    unsaid = {"type": "supervised", "supervised": {"hyperparameters": {}}}
    assert training_epochs({"method": unsaid, "hyperparameters": {"n_epochs": 1}}, 10) == 10
    assert training_epochs({"hyperparameters": {"n_epochs": 50}}, 10) == 50
    # A method without a type: upstream reads the legacy field, not what the method nests.
    untyped = {"supervised": {"hyperparameters": {"n_epochs": 1}}}
    assert training_epochs({"method": untyped, "hyperparameters": {"n_epochs": 50}}, 10) == 50
    assert training_epochs({"method": untyped}, 10) == 10


def test_the_method_is_supervised_unless_named() -> None:
    assert training_method({}) == "supervised"
    assert training_method({"method": {"type": "dpo"}}) == "dpo"
    assert training_method({"method": {"type": "reinforcement"}}) == "reinforcement"
    assert training_method({"method": "dpo"}) == "supervised"


def test_a_training_file_holds_every_string_and_each_message_framing() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 and 2?"},
        {"role": "assistant", "content": "4."},
    ]
    data = jsonl({"messages": messages}, {"messages": messages[1:]})
    counted = training_file_tokens(data, IMAGES)
    # What a chat request of the same messages counts as its prompt, for each example.
    assert counted == count_messages(messages) + count_messages(messages[1:])
    # Never less than what upstream (here, the simulator) trains an epoch on.
    trained = training_tokens(data)
    assert isinstance(trained, int) and counted >= trained
    assert training_file_tokens(b"\n\n", IMAGES) == 0


def test_tools_preference_outputs_images_and_broken_lines_all_count() -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Finds it."}}]
    with_tools = jsonl({"messages": [{"role": "user", "content": "Hi"}], "tools": tools})
    plain = jsonl({"messages": [{"role": "user", "content": "Hi"}]})
    assert training_file_tokens(with_tools, IMAGES) > training_file_tokens(plain, IMAGES)
    dpo = jsonl(
        {
            "input": {"messages": [{"role": "user", "content": "Hi"}]},
            "preferred_output": [{"role": "assistant", "content": "Hello there"}],
            "non_preferred_output": [{"role": "assistant", "content": "Go away"}],
        }
    )
    assert training_file_tokens(dpo, IMAGES) == (
        TOKENS_FOR_REPLY + 3 * TOKENS_PER_MESSAGE
        + sum(count_text(t) for t in ("user", "Hi", "assistant", "Hello there", "assistant"))
        + count_text("Go away")
    )  # fmt: skip
    data_url = "data:image/png;base64," + "A" * 50_000
    image = {"type": "image_url", "image_url": {"url": data_url}}
    vision = jsonl({"messages": [{"role": "user", "content": [image]}]})
    # An image holds its most, not the tokens of its base64 text.
    assert training_file_tokens(vision, IMAGES) == (
        TOKENS_FOR_REPLY + TOKENS_PER_MESSAGE + count_text("user") + IMAGES.high
    )
    assert training_file_tokens(b"not json at all\n", IMAGES) == count_text("not json at all")
