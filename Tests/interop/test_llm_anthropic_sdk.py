"""`switchboard llm` (offline planner) against the official `anthropic` Python SDK: the SDK is
pointed at the adapter with `base_url` and must parse every answer into its own types.

1. A plain message (Message, TextBlock, usage, end_turn), /v1/models.
2. A tool-use round trip with todo0's four tools: `add a todo "prep the demo"` → ToolUseBlock
   create-todo {"title": "prep the demo"} → tool_result → an end_turn summary.
3. Streaming: `messages.stream()` text deltas and events; the final message equals the
   non-streamed answer; a streamed tool_use whose input the SDK assembles from input_json_delta.
4. The adapter key (LLM_API_KEY): 401 AuthenticationError for a wrong key, success with the
   right one (x-api-key and Bearer); 400 BadRequestError; the Anthropic error shape in `e.body`.
5. AsyncAnthropic streaming.
6. Planner details: max_tokens cuts, whole-number arguments.

Sources/LLMAdapter/Backends/OfflineBackend.swift and Planner/ are the reference.
"""

from __future__ import annotations

import asyncio
import json
import re

import anthropic
import pytest
import requests
from anthropic.types import Message, TextBlock, ToolUseBlock

from llm_fixtures import OFFLINE_MODEL, LLMAdapter, llm_adapter, llm_adapter_factory, llm_binary  # noqa: F401  (fixtures)

MODEL = "switchboard-interop"  # any name: the offline backend answers as itself
MAX_TOKENS = 1024

# The tools todo0 offers (Sources/Todo0/TodoTools.swift), in the Messages API's shape.
TODO_TOOLS = [
    {
        "name": "get-todos",
        "description": "List the signed-in user's todos with their ids and whether each is done.",
        "input_schema": {"type": "object", "properties": {}, "additionalProperties": False},
    },
    {
        "name": "create-todo",
        "description": "Add a todo for the signed-in user.",
        "input_schema": {
            "type": "object",
            "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200, "description": "What to do"}},
            "required": ["title"],
            "additionalProperties": False,
        },
    },
    {
        "name": "toggle-todo",
        "description": "Flip a todo between done and not done, by id.",
        "input_schema": {
            "type": "object",
            "properties": {"id": {"type": "integer", "minimum": 1, "description": "The todo's id"}},
            "required": ["id"],
            "additionalProperties": False,
        },
    },
    {
        "name": "delete-todo",
        "description": "Delete a todo, by id.",
        "input_schema": {
            "type": "object",
            "properties": {"id": {"type": "integer", "minimum": 1, "description": "The todo's id"}},
            "required": ["id"],
            "additionalProperties": False,
        },
    },
]


def client_for(adapter: LLMAdapter, api_key: str = "any", **kwargs) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=adapter.url, api_key=api_key, max_retries=0, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def client(llm_adapter: LLMAdapter) -> anthropic.Anthropic:
    c = client_for(llm_adapter)
    yield c
    c.close()


def blocks(message) -> list[dict]:
    """The content blocks as plain dicts of the fields the Messages API defines."""
    out = []
    for b in message.content:
        if b.type == "text":
            out.append({"type": "text", "text": b.text})
        elif b.type == "tool_use":
            out.append({"type": "tool_use", "id": b.id, "name": b.name, "input": b.input})
        else:
            out.append({"type": b.type})
    return out


# --------------------------------------------------------------------------- 1. a plain message


def test_plain_message_is_an_sdk_message_from_the_offline_planner(client: anthropic.Anthropic, llm_adapter: LLMAdapter):
    message = client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "who are you?"}])

    assert isinstance(message, Message)
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_"), message.id
    assert message.model == OFFLINE_MODEL
    assert len(message.content) == 1, message.content
    block = message.content[0]
    assert block.type == "text" and isinstance(block, TextBlock)
    assert "offline planner" in block.text, block.text
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0, message.usage
    # The adapter's request-id header is what the SDK exposes for support.
    assert re.fullmatch(r"[0-9a-f]{24}", message._request_id or ""), message._request_id
    assert message.id == "msg_" + message._request_id


def test_models_list_names_the_offline_planner(client: anthropic.Anthropic):
    page = client.models.list()
    ids = [m.id for m in page.data]
    assert ids == [OFFLINE_MODEL], ids
    assert page.data[0].type == "model"


# --------------------------------------------------------------------------- 2. tool use round trip


ADD_PREP = 'add a todo "prep the demo"'


def test_tool_use_round_trip_with_todo0_tools(client: anthropic.Anthropic):
    first = client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, tools=TODO_TOOLS, messages=[{"role": "user", "content": ADD_PREP}])

    assert first.stop_reason == "tool_use", blocks(first)
    uses = [b for b in first.content if isinstance(b, ToolUseBlock)]
    assert len(uses) == 1, blocks(first)
    use = uses[0]
    assert use.type == "tool_use"
    assert use.name == "create-todo"
    assert use.input == {"title": "prep the demo"}
    assert use.id.startswith("toolu_"), use.id

    # The conversation goes on as an agent would send it: the assistant's content as the SDK
    # parsed it, then the tool's result.
    second = client.messages.create(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        tools=TODO_TOOLS,
        messages=[
            {"role": "user", "content": ADD_PREP},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Added todo 7: prep the demo"}]},
        ],
    )
    assert isinstance(second, Message)
    assert second.stop_reason == "end_turn", blocks(second)
    assert [b.type for b in second.content] == ["text"], blocks(second)
    assert "prep the demo" in second.content[0].text, second.content[0].text
    assert not any(isinstance(b, ToolUseBlock) for b in second.content)


def test_tool_use_is_deterministic_and_other_tools_get_their_arguments(client: anthropic.Anthropic):
    def ask(text: str) -> Message:
        return client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, tools=TODO_TOOLS, messages=[{"role": "user", "content": text}])

    a, b = ask(ADD_PREP), ask(ADD_PREP)
    assert blocks(a) == blocks(b), "the same conversation must get the same answer (tool_use id included)"

    toggled = ask("mark todo 3 as done")
    assert toggled.stop_reason == "tool_use", blocks(toggled)
    assert [(u.name, u.input) for u in toggled.content if isinstance(u, ToolUseBlock)] == [("toggle-todo", {"id": 3})]

    listed = ask("show my todos")
    assert [(u.name, u.input) for u in listed.content if isinstance(u, ToolUseBlock)] == [("get-todos", {})]

    # id 0 is refused by the schema (minimum 1): the planner asks instead of calling.
    refused = ask("delete todo 0")
    assert refused.stop_reason == "end_turn", blocks(refused)
    assert not any(isinstance(u, ToolUseBlock) for u in refused.content)
    assert "at least 1" in refused.content[0].text, refused.content[0].text


# --------------------------------------------------------------------------- 3. streaming


def test_streamed_answer_equals_the_non_streamed_one(client: anthropic.Anthropic):
    request = dict(model=MODEL, max_tokens=MAX_TOKENS, tools=TODO_TOOLS, messages=[{"role": "user", "content": "who are you?"}])
    plain = client.messages.create(**request)

    pieces: list[str] = []
    with client.messages.stream(**request) as stream:
        for text in stream.text_stream:
            pieces.append(text)
        final = stream.get_final_message()

    assert isinstance(final, Message)
    assert len(pieces) > 1, f"the self-description should arrive in several text deltas, got {pieces!r}"
    assert "".join(pieces) == final.content[0].text
    assert blocks(final) == blocks(plain)
    assert final.stop_reason == plain.stop_reason == "end_turn"
    assert final.model == plain.model == OFFLINE_MODEL
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens > 0


def test_streamed_events_follow_the_messages_protocol(client: anthropic.Anthropic):
    request = dict(model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "who are you?"}])
    with client.messages.stream(**request) as stream:
        events = list(stream)
        final = stream.get_final_message()

    # The SDK adds its own `text` convenience events; keep the wire events.
    wire = [e.type for e in events if e.type not in ("text", "input_json", "citation", "thinking", "signature")]
    assert wire[0] == "message_start" and wire[-1] == "message_stop", wire
    assert wire[-2] == "message_delta", wire
    assert wire.count("content_block_start") == wire.count("content_block_stop") == len(final.content) == 1, wire
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert len(deltas) > 1 and all(d.delta.type == "text_delta" for d in deltas), [d.delta for d in deltas]
    assert "".join(d.delta.text for d in deltas) == final.content[0].text
    start = events[0]
    assert start.message.usage.input_tokens > 0 and start.message.content == []
    message_delta = [e for e in events if e.type == "message_delta"][0]
    assert message_delta.delta.stop_reason == "end_turn"
    assert message_delta.usage.output_tokens == final.usage.output_tokens > 0


def test_streamed_tool_use_input_is_assembled_by_the_sdk(client: anthropic.Anthropic):
    title = "prep the demo for the quarterly review with the whole team on friday"
    request = dict(model=MODEL, max_tokens=MAX_TOKENS, tools=TODO_TOOLS, messages=[{"role": "user", "content": f'add a todo "{title}"'}])
    plain = client.messages.create(**request)

    with client.messages.stream(**request) as stream:
        events = list(stream)
        final = stream.get_final_message()

    partials = [e.delta.partial_json for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert len(partials) > 1, f"the input should arrive in several input_json_delta pieces, got {partials!r}"
    assert json.loads("".join(partials)) == {"title": title}

    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if isinstance(b, ToolUseBlock)]
    assert len(uses) == 1, blocks(final)
    assert uses[0].name == "create-todo"
    assert uses[0].input == {"title": title}, "the SDK must parse the tool input from the input_json_delta pieces"
    assert blocks(final) == blocks(plain)


# --------------------------------------------------------------------------- 4. adapter key and errors


@pytest.fixture(scope="module")
def keyed_adapter(llm_adapter_factory) -> LLMAdapter:
    return llm_adapter_factory({"LLM_API_KEY": "k1"}, name="keyed")


def test_adapter_key_is_required(keyed_adapter: LLMAdapter):
    request = dict(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "who are you?"}])

    with client_for(keyed_adapter, api_key="wrong") as wrong:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            wrong.messages.create(**request)
        e = caught.value
        assert e.status_code == 401
        assert isinstance(e.body, dict) and e.body.get("type") == "error", e.body
        assert e.body["error"]["type"] == "authentication_error", e.body
        assert e.type == "authentication_error"
        assert "wrong" not in json.dumps(e.body), "the rejected key must not be echoed"
        assert e.request_id, "the error carries the adapter's request-id"

        # A streamed request is refused before the stream begins, the same way.
        with pytest.raises(anthropic.AuthenticationError):
            with wrong.messages.stream(**request) as stream:
                stream.get_final_message()
        with pytest.raises(anthropic.AuthenticationError):
            wrong.models.list()

    with client_for(keyed_adapter, api_key="k1") as right:
        message = right.messages.create(**request)
        assert isinstance(message, Message) and message.stop_reason in ("end_turn", "max_tokens")
        assert [m.id for m in right.models.list().data] == [OFFLINE_MODEL]

    # Authorization: Bearer works as well (the SDK's auth_token).
    with anthropic.Anthropic(base_url=keyed_adapter.url, api_key=None, auth_token="k1", max_retries=0, timeout=30) as bearer:
        assert isinstance(bearer.messages.create(**request), Message)

    # No key at all (plain HTTP, as the SDK refuses to send without one).
    r = requests.post(keyed_adapter.url + "/v1/messages", json=request, timeout=10)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["type"] == "authentication_error"
    assert "k1" not in keyed_adapter.log_text(), "the adapter key must not show up in the adapter's log"


def test_bad_request_is_a_bad_request_error(client: anthropic.Anthropic):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=0, messages=[{"role": "user", "content": "who are you?"}])
    e = caught.value
    assert e.status_code == 400
    assert e.body["type"] == "error", e.body
    assert e.body["error"]["type"] == "invalid_request_error", e.body
    assert "max_tokens" in e.body["error"]["message"], e.body

    # Another field, the same shape: a tool_use block in a user message.
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model=MODEL, max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "tool_use", "id": "toolu_1", "name": "x", "input": {}}]}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "messages.0.content.0" in caught.value.body["error"]["message"], caught.value.body

    # Streamed, the error comes before the stream.
    with pytest.raises(anthropic.BadRequestError):
        with client.messages.stream(model=MODEL, max_tokens=0, messages=[{"role": "user", "content": "hi"}]) as stream:
            stream.get_final_message()


def test_unknown_path_is_a_not_found_error_in_the_anthropic_shape(client: anthropic.Anthropic):
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.get("/v1/nothing-here", cast_to=object)
    assert caught.value.body["error"]["type"] == "not_found_error", caught.value.body


# --------------------------------------------------------------------------- 5. async client


def test_async_client_streams(llm_adapter: LLMAdapter):
    title = "prep the demo for the quarterly review with the whole team on friday"

    async def run():
        async with anthropic.AsyncAnthropic(base_url=llm_adapter.url, api_key="any", max_retries=0, timeout=30) as client:
            texts: list[str] = []
            async with client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS,
                                              messages=[{"role": "user", "content": "who are you?"}]) as stream:
                async for text in stream.text_stream:
                    texts.append(text)
                said = await stream.get_final_message()
            async with client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, tools=TODO_TOOLS,
                                              messages=[{"role": "user", "content": f'add a todo "{title}"'}]) as stream:
                kinds = [event.type async for event in stream]
                used = await stream.get_final_message()
            plain = await client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "who are you?"}])
            return texts, said, kinds, used, plain

    texts, said, kinds, used, plain = asyncio.run(run())
    assert len(texts) > 1 and "".join(texts) == said.content[0].text
    assert "offline planner" in said.content[0].text
    assert blocks(said) == blocks(plain)
    assert said.stop_reason == "end_turn"
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    assert used.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in used.content if isinstance(b, ToolUseBlock)] == [("create-todo", {"title": title})]


# --------------------------------------------------------------------------- 6. planner details


def test_max_tokens_cuts_the_answer(client: anthropic.Anthropic):
    full = client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "who are you?"}])
    cut = client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "who are you?"}])
    assert cut.stop_reason == "max_tokens"
    assert full.content[0].text.startswith(cut.content[0].text) and len(cut.content[0].text) < len(full.content[0].text)
    with client.messages.stream(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "who are you?"}]) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "max_tokens" and blocks(streamed) == blocks(cut)


def test_max_tokens_cut_never_splits_a_character(client: anthropic.Anthropic):
    """A cut answer must still be the beginning of the answer, character for character: a model
    stops between tokens, never inside a UTF-8 sequence. With no tools the planner quotes the
    user's words, so an answer full of two-byte characters is cut wherever the budget falls."""
    said = "é" * 200
    full = client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": said}])
    text = full.content[0].text
    assert full.stop_reason == "end_turn" and "é" in text, text
    prefix_bytes = len(text[: text.index("é")].encode())
    for max_tokens in range(prefix_bytes // 4 + 1, prefix_bytes // 4 + 4):
        cut = client.messages.create(model=MODEL, max_tokens=max_tokens, messages=[{"role": "user", "content": said}])
        assert cut.stop_reason == "max_tokens"
        piece = cut.content[0].text
        assert "\ufffd" not in piece, f"max_tokens={max_tokens}: the cut split a character: {piece[-12:]!r}"
        assert text.startswith(piece), f"max_tokens={max_tokens}: {piece[-12:]!r} is not a prefix of the full answer"


def test_fractional_id_is_refused_not_truncated(client: anthropic.Anthropic):
    """toggle-todo's id is an integer: "2.5" must make the planner ask again (ArgumentFiller:
    "id must be a whole number, not 2.5"), never call the tool on todo 2."""
    message = client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, tools=TODO_TOOLS,
                                     messages=[{"role": "user", "content": "toggle todo 2.5"}])
    uses = [(b.name, b.input) for b in message.content if isinstance(b, ToolUseBlock)]
    assert uses == [], f"the planner called {uses} for 'toggle todo 2.5'"
    assert message.stop_reason == "end_turn"
    assert "whole number" in message.content[0].text, message.content[0].text
