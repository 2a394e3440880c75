"""The simulator's stateful surface (files, batches, images, audio, legacy completions,
fine-tuning, vector stores, stored chat completions) and its bill, on a real socket, driven by
the official openai SDK. Expected micro-dollars are computed here from the published prices."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.config import SimulatorConfig
from gateway.simulator import create_simulator
from tests.conftest import ServerThread

KEY = "sk-simulated-upstream"
OTHER = "sk-other-key"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    config = SimulatorConfig(api_keys=(KEY, OTHER))
    with ServerThread(create_simulator(config)) as running:
        yield running


def sdk(server: ServerThread, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key=key, max_retries=0)


def bill(server: ServerThread) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{server.url}/_sim/bill").json()
    return result


def line(server: ServerThread, key: str, endpoint: str, model: str) -> dict[str, Any]:
    for row in bill(server)["by_key"][key]["lines"]:
        if (row["endpoint"], row["model"]) == (endpoint, model):
            return dict(row)
    raise AssertionError(f"no bill line for {endpoint} {model}")


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def test_files_upload_list_page_content_delete(server: ServerThread) -> None:
    client = sdk(server, OTHER)
    uploaded = [
        client.files.create(file=(f"f{i}.jsonl", f"line {i}\n".encode()), purpose="batch")
        for i in range(3)
    ]
    first = uploaded[0]
    assert first.id.startswith("file-") and first.object == "file"
    assert first.bytes == 7 and first.filename == "f0.jsonl" and first.purpose == "batch"
    assert first.status == "processed" and first.expires_at == first.created_at + 30 * 86400
    page = client.files.list(limit=2)
    assert [f.id for f in page.data] == [uploaded[2].id, uploaded[1].id]  # newest first
    assert page.has_more is True
    assert [f.id for f in page.iter_pages().__next__().data] == [uploaded[2].id, uploaded[1].id]
    assert [f.id for f in client.files.list()] == [f.id for f in reversed(uploaded)]
    assert [f.id for f in client.files.list(order="asc", after=first.id)] == [
        uploaded[1].id,
        uploaded[2].id,
    ]
    assert client.files.list(purpose="fine-tune").data == []
    assert client.files.retrieve(first.id).filename == "f0.jsonl"
    assert client.files.content(first.id).content == b"line 0\n"
    deleted = client.files.delete(first.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (first.id, "file", True)
    with pytest.raises(openai.NotFoundError) as caught:
        client.files.retrieve(first.id)
    assert caught.value.body == {
        "message": f"No such File object: {first.id}",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }
    # Another key cannot see them.
    with pytest.raises(openai.NotFoundError):
        sdk(server).files.retrieve(uploaded[1].id)
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("x.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]


def chat_line(custom_id: str, text: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
    }


def test_batch_steps_then_completes_with_output_lines_usage_and_half_price(
    server: ServerThread,
) -> None:
    client = sdk(server)
    rows = [chat_line("a", "Hello there."), chat_line("b", "Tell me more.")]
    data = client.files.create(file=("in.jsonl", jsonl(rows)), purpose="batch")
    batch = client.batches.create(
        input_file_id=data.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "1"},
    )
    assert batch.id.startswith("batch_") and batch.status == "validating"
    assert batch.metadata == {"job": "1"}
    seen = [client.batches.retrieve(batch.id).status for _ in range(3)]
    assert seen == ["in_progress", "finalizing", "completed"]
    done = client.batches.retrieve(batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (2, 2)
    assert done.output_file_id is not None and done.error_file_id is None
    lines = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert [x["custom_id"] for x in lines] == ["a", "b"]
    for out in lines:
        assert out["id"].startswith("batch_req_") and out["error"] is None
        assert out["response"]["status_code"] == 200
        assert out["response"]["request_id"].startswith("req_")
        assert out["response"]["body"]["object"] == "chat.completion"
    usages = [x["response"]["body"]["usage"] for x in lines]
    raw = httpx.get(
        f"{server.url}/v1/batches/{batch.id}", headers={"authorization": f"Bearer {KEY}"}
    ).json()
    prompt = sum(u["prompt_tokens"] for u in usages)
    completion = sum(u["completion_tokens"] for u in usages)
    assert raw["usage"] == {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }
    # gpt-4o-mini: $0.15 in, $0.60 out per 1M; batch half price, each line rounded up.
    expected = sum(
        math.ceil((u["prompt_tokens"] * 150_000 + u["completion_tokens"] * 600_000) / 2_000_000)
        for u in usages
    )
    row = line(server, KEY, "/v1/batches", "gpt-4o-mini-2024-07-18")
    assert row["micros"] == expected and row["detail"]["requests"] == 2
    assert client.batches.list().data[0].id == batch.id


def test_batch_knobs_complete_at_once_and_bad_lines_fail(server: ServerThread) -> None:
    client = sdk(server)
    rows = [
        {
            "custom_id": "e1",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": "hi"},
        }
    ]
    data = client.files.create(file=("e.jsonl", jsonl(rows)), purpose="batch")
    batch = client.batches.create(
        input_file_id=data.id,
        endpoint="/v1/embeddings",
        completion_window="24h",
        extra_headers={"x-sim-batch": "complete"},
    )
    assert batch.status == "completed" and batch.output_file_id
    other = client.batches.create(
        input_file_id=data.id, endpoint="/v1/embeddings", completion_window="24h"
    )
    completed = httpx.post(f"{server.url}/_sim/batches/{other.id}/complete").json()
    assert completed["status"] == "completed"
    bad = client.files.create(file=("b.jsonl", jsonl(rows)), purpose="batch")
    failing = client.batches.create(
        input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    failed = client.batches.retrieve(failing.id)
    assert failed.status == "failed" and failed.errors is not None
    assert failed.errors.data is not None and failed.errors.data[0].line == 1
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-missing", endpoint="/v1/embeddings", completion_window="24h"
        )
    cancelled = client.batches.cancel(
        client.batches.create(
            input_file_id=data.id, endpoint="/v1/embeddings", completion_window="24h"
        ).id
    )
    assert cancelled.status == "cancelling"


def test_images_each_model(server: ServerThread) -> None:
    client = sdk(server)
    dalle2 = client.images.generate(prompt="a cat", n=2, size="256x256")
    assert len(dalle2.data) == 2 and dalle2.data[0].url and dalle2.usage is None
    dalle3 = client.images.generate(
        model="dall-e-3", prompt="a dog", quality="hd", size="1792x1024", response_format="b64_json"
    )
    assert dalle3.data[0].b64_json and dalle3.data[0].revised_prompt == "a dog"
    gpt = client.images.generate(model="gpt-image-1", prompt="a fox", quality="low", n=2)
    assert gpt.data[0].b64_json and gpt.usage is not None
    assert gpt.usage.output_tokens == 2 * 272
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="dall-e-3", prompt="x", n=2)
    with pytest.raises(openai.BadRequestError):
        client.images.generate(model="dall-e-2", prompt="x", size="1792x1024")
    assert line(server, KEY, "/v1/images/generations", "dall-e-2")["micros"] == 2 * 16_000
    assert line(server, KEY, "/v1/images/generations", "dall-e-3")["micros"] == 120_000
    text = gpt.usage.input_tokens
    expected = math.ceil((text * 5_000_000 + 544 * 40_000_000) / 1_000_000)
    assert line(server, KEY, "/v1/images/generations", "gpt-image-1")["micros"] == expected


def test_speech_bytes_and_transcription_usage(server: ServerThread) -> None:
    client = sdk(server)
    text = "Hello from the simulator."
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input=text)
    audio = speech.content
    assert audio.startswith(b"ID3") and len(audio) == math.ceil(len(text) * 16000 / 15)
    assert client.audio.speech.create(model="tts-1", voice="alloy", input=text).content == audio
    assert line(server, KEY, "/v1/audio/speech", "tts-1")["micros"] == 2 * 15 * len(text)
    whisper = client.audio.transcriptions.create(model="whisper-1", file=("a.mp3", audio))
    assert whisper.text
    # The simulator's speech is no real audio (a format's magic bytes, then filler): as an
    # upload, it lasts its bytes at 16 kB a second.
    seconds = math.ceil(len(audio) / 16000)
    raw = whisper.model_dump()
    assert raw["usage"] == {"type": "duration", "seconds": seconds}
    assert line(server, KEY, "/v1/audio/transcriptions", "whisper-1")["micros"] == seconds * 100
    tokens = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.mp3", audio))
    usage = tokens.model_dump()["usage"]
    assert usage["type"] == "tokens"
    assert usage["input_token_details"]["audio_tokens"] == seconds * 16
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    with pytest.warns(DeprecationWarning):  # the SDK marks translations deprecated
        plain = client.audio.translations.create(
            model="whisper-1", file=("a.mp3", audio), response_format="text"
        )
    assert isinstance(plain, str) and plain.strip() == whisper.text


def test_gpt_4o_audio_streams_events_ending_with_their_usage(server: ServerThread) -> None:
    client = sdk(server)
    text = "Hello from the simulator."
    audio = client.audio.speech.create(model="gpt-4o-mini-tts", voice="alloy", input=text)
    events = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="alloy", input=text, stream_format="sse"
    ).content
    parsed = [json.loads(e.removeprefix(b"data: ")) for e in events.split(b"\n\n") if e]
    assert [e["type"] for e in parsed] == ["speech.audio.delta"] * 4 + ["speech.audio.done"]
    assert b"".join(base64.b64decode(e["audio"]) for e in parsed[:-1]) == audio.content
    tokens = math.ceil(len(text) * 20 / 15)
    assert parsed[-1]["usage"]["output_tokens"] == tokens
    with pytest.raises(openai.BadRequestError):  # tts-1 has no event stream
        client.audio.speech.create(model="tts-1", voice="alloy", input=text, stream_format="sse")
    upload = ("a.mp3", audio.content)
    whole = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=upload)
    streamed = list(
        client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=upload, stream=True)
    )
    done = streamed[-1]
    assert done.type == "transcript.text.done" and done.text == whole.text
    assert "".join(e.delta for e in streamed[:-1]) == whole.text
    assert done.usage is not None and done.usage.model_dump() == whole.model_dump()["usage"]
    ignored = httpx.post(  # whisper-1 ignores `stream`
        f"{server.url}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {KEY}"},
        files={"file": upload},
        data={"model": "whisper-1", "stream": "true"},
    )
    assert ignored.json()["usage"]["type"] == "duration"


def test_legacy_completions_bill_every_best_of_candidate(server: ServerThread) -> None:
    client = sdk(server, OTHER)
    single = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=40
    )
    many = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=40, n=1, best_of=3
    )
    assert many.object == "text_completion" and many.id.startswith("cmpl-")
    assert len(many.choices) == 1 and many.usage is not None and single.usage is not None
    assert many.usage.completion_tokens > single.usage.completion_tokens
    assert many.choices[0].text == single.choices[0].text
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="davinci-002", prompt="x", n=3, best_of=2)
    expected = sum(
        math.ceil((u.prompt_tokens * 1_500_000 + u.completion_tokens * 2_000_000) / 1_000_000)
        for u in (single.usage, many.usage)
    )
    assert line(server, OTHER, "/v1/completions", "gpt-3.5-turbo-instruct")["micros"] == expected


def test_fine_tuning_job_succeeds_and_its_model_answers(server: ServerThread) -> None:
    client = sdk(server)
    examples = [
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Ciao."},
            ]
        },
    ]
    training = client.files.create(file=("train.jsonl", jsonl(examples)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=training.id,
        suffix="demo",
        hyperparameters={"n_epochs": 2},
    )
    assert job.id.startswith("ftjob-") and job.status == "validating_files"
    seen = [client.fine_tuning.jobs.retrieve(job.id).status for _ in range(3)]
    assert seen == ["queued", "running", "succeeded"]
    done = client.fine_tuning.jobs.retrieve(job.id)
    name = done.fine_tuned_model
    assert name is not None and name.startswith("ft:gpt-4o-mini-2024-07-18:sim-org:demo:")
    assert len(name.rsplit(":", 1)[1]) == 8
    from gateway.wire.tokens import count_text

    tokens = sum(count_text(t) for t in ("Hi", "Hello!", "Bye", "Ciao."))
    assert done.trained_tokens == tokens * 2
    events = client.fine_tuning.jobs.list_events(job.id)
    assert events.data[0].message == "The job has successfully completed"
    assert client.models.retrieve(name).id == name
    assert name in [m.id for m in client.models.list()]
    chat = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}])
    assert chat.model == name and chat.usage is not None
    row = line(server, KEY, "/v1/fine_tuning/jobs", name)
    assert row["micros"] == math.ceil(tokens * 2 * 3_000_000 / 1_000_000)
    inference = math.ceil(
        (chat.usage.prompt_tokens * 300_000 + chat.usage.completion_tokens * 1_200_000) / 1_000_000
    )
    assert line(server, KEY, "/v1/chat/completions", name)["micros"] == inference
    with pytest.raises(openai.NotFoundError):
        sdk(server, OTHER).models.retrieve(name)
    second = client.fine_tuning.jobs.create(model="gpt-4o-2024-08-06", training_file=training.id)
    finished = httpx.post(f"{server.url}/_sim/fine_tuning/jobs/{second.id}/complete").json()
    assert finished["status"] == "succeeded" and finished["fine_tuned_model"].count(":") == 4
    assert [j.id for j in client.fine_tuning.jobs.list()][:2] == [second.id, job.id]
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(model="gpt-4o", training_file=training.id)


def test_a_fine_tuning_job_leaves_checkpoints_step_metrics_and_a_deletable_model(
    server: ServerThread,
) -> None:
    client = sdk(server)
    examples = [{"messages": [{"role": "user", "content": f"Q{i}"}]} for i in range(4)]
    training = client.files.create(file=("train.jsonl", jsonl(examples)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18",
        training_file=training.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 5}}},
    )
    httpx.post(f"{server.url}/_sim/fine_tuning/jobs/{job.id}/complete")
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.hyperparameters.n_epochs == 5 and done.method is not None
    name = done.fine_tuned_model
    assert name is not None
    # The last three epochs' checkpoints, newest first; each is a model name.
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [20, 16, 12]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{name}:ckpt-step-20"
    assert all(c.id.startswith("ftckpt_") for c in checkpoints)
    (result,) = done.result_files
    assert client.files.retrieve(result).purpose == "fine-tune-results"
    assert client.files.content(result).read().count(b"\n") == 21  # a header and 20 steps
    with pytest.raises(openai.NotFoundError):
        sdk(server, OTHER).models.delete(name)
    assert client.models.delete(name).deleted
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(name)


def test_vector_stores_crud(server: ServerThread) -> None:
    client = sdk(server)
    doc = client.files.create(file=("doc.txt", b"some text"), purpose="assistants")
    store = client.vector_stores.create(name="docs", file_ids=[doc.id])
    assert store.id.startswith("vs_") and store.object == "vector_store"
    assert store.usage_bytes == 9 and store.file_counts.completed == 1
    assert client.vector_stores.retrieve(store.id).name == "docs"
    updated = client.vector_stores.update(store.id, name="renamed", metadata={"k": "v"})
    assert updated.name == "renamed" and updated.metadata == {"k": "v"}
    assert store.id in [s.id for s in client.vector_stores.list()]
    deleted = client.vector_stores.delete(store.id)
    assert deleted.deleted is True and deleted.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(store.id)


def test_stored_chat_completions(server: ServerThread) -> None:
    client = sdk(server, OTHER)
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    kept = [
        client.chat.completions.create(
            model="gpt-4o", messages=messages, store=True, metadata={"n": str(i)}
        )
        for i in range(2)
    ]
    client.chat.completions.create(model="gpt-4o", messages=messages)  # not stored
    listed = client.chat.completions.list()
    assert [c.id for c in listed.data] == [c.id for c in kept]  # oldest first
    assert [c.id for c in client.chat.completions.list(model="gpt-4o-mini")] == []
    got = client.chat.completions.retrieve(kept[0].id)
    assert got.choices[0].message.content == kept[0].choices[0].message.content
    assert got.metadata == {"n": "0"}
    updated = client.chat.completions.update(kept[0].id, metadata={"n": "changed"})
    assert updated.metadata == {"n": "changed"}
    items = client.chat.completions.messages.list(kept[0].id)
    assert [(m.id, m.content) for m in items.data] == [
        (f"{kept[0].id}-0", "Be brief."),
        (f"{kept[0].id}-1", "Hi"),
    ]
    deleted = client.chat.completions.delete(kept[1].id)
    assert (deleted.object, deleted.deleted) == ("chat.completion.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(kept[1].id)


def test_bill_prices_chat_responses_embeddings_and_resets(server: ServerThread) -> None:
    client = sdk(server)
    before = line_or_none(server, KEY, "/v1/chat/completions", "gpt-4o-2024-08-06")
    chat = client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Price me."}]
    )
    assert chat.usage is not None
    expected = math.ceil(
        (chat.usage.prompt_tokens * 2_500_000 + chat.usage.completion_tokens * 10_000_000)
        / 1_000_000
    )
    row = line(server, KEY, "/v1/chat/completions", "gpt-4o-2024-08-06")
    assert row["micros"] - (before or 0) == expected
    o1 = client.chat.completions.create(
        model="o1-mini", messages=[{"role": "user", "content": "Think."}]
    )
    assert o1.usage is not None and o1.usage.completion_tokens_details is not None
    assert o1.usage.completion_tokens_details.reasoning_tokens  # billed as output
    expected_o1 = math.ceil(
        (o1.usage.prompt_tokens * 3_000_000 + o1.usage.completion_tokens * 12_000_000) / 1_000_000
    )
    assert line(server, KEY, "/v1/chat/completions", "o1-mini-2024-09-12")["micros"] == expected_o1
    response = client.responses.create(model="gpt-4o-mini", input="Say hi.")
    assert response.usage is not None
    expected_responses = math.ceil(
        (response.usage.input_tokens * 150_000 + response.usage.output_tokens * 600_000) / 1_000_000
    )
    assert line(server, KEY, "/v1/responses", "gpt-4o-mini-2024-07-18")["micros"] == (
        expected_responses
    )
    embedded = client.embeddings.create(model="text-embedding-3-large", input="x" * 50)
    expected_embedding = math.ceil(embedded.usage.prompt_tokens * 130_000 / 1_000_000)
    assert line(server, KEY, "/v1/embeddings", "text-embedding-3-large")["micros"] == (
        expected_embedding
    )
    client.moderations.create(input="free")
    whole = bill(server)
    assert whole["total_micros"] == sum(k["total_micros"] for k in whole["by_key"].values())
    assert all(r["endpoint"] != "/v1/moderations" for r in whole["by_key"][KEY]["lines"])
    assert httpx.delete(f"{server.url}/_sim/bill").json()["total_micros"] == 0
    assert bill(server) == {"total_micros": 0, "by_key": {}}


def line_or_none(server: ServerThread, key: str, endpoint: str, model: str) -> int | None:
    try:
        return int(line(server, key, endpoint, model)["micros"])
    except (AssertionError, KeyError):
        return None


def test_a_legacy_completion_streams_as_text_completion_chunks(server: ServerThread) -> None:
    """`stream: true` on /v1/completions: `text_completion` chunks of the same text, the
    usage in a last chunk of no choices when `stream_options.include_usage` asks for it, then
    `data: [DONE]`; billed as the whole answer once it ends."""
    client = sdk(server, OTHER)
    asked = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 40}
    whole = client.completions.create(**asked)
    httpx.delete(f"{server.url}/_sim/bill")
    chunks = list(
        client.completions.create(**asked, stream=True, stream_options={"include_usage": True})
    )
    assert {chunk.object for chunk in chunks} == {"text_completion"}
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("cmpl-")
    text = "".join(choice.text for chunk in chunks for choice in chunk.choices)
    assert text == whole.choices[0].text and len(chunks) > 3
    finish = [choice.finish_reason for chunk in chunks for choice in chunk.choices]
    assert finish[-1] == whole.choices[0].finish_reason and set(finish[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(chunk.usage is None for chunk in chunks[:-1])
    usage = whole.usage
    assert usage is not None
    billed = math.ceil(
        (usage.prompt_tokens * 1_500_000 + usage.completion_tokens * 2_000_000) / 1e6
    )
    assert line(server, OTHER, "/v1/completions", "gpt-3.5-turbo-instruct")["micros"] == billed
    raw = httpx.post(
        f"{server.url}/v1/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={**asked, "stream": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n") and '"usage"' not in raw.text
