#!/usr/bin/env python3
"""Tool calling, JSON mode and the other request members through Cortex, with OpenAI's official
Python client (`openai` on PyPI), unchanged.

    .venv/bin/python Tests/Python/openai_tools_check.py BASE_URL API_KEY MODEL openai|ollama

The upstream (FakeLLMServer's `.tools` behaviour, OpenAI's or Ollama's wire format) calls the
first tool with {"city": "Paris"} unless the last message is a tool's answer, which it answers
"It is sunny". Checks: a tool-calling round trip (the assistant's tool_calls, then a tool message
with its tool_call_id), the same streamed (tool-call deltas), JSON mode and a JSON schema, stop,
seed and top_p; on OpenAI logprobs, system_fingerprint, user and logit_bias; on Ollama, that what
Ollama cannot honour is a 400 naming the field. LLMServingTests runs it and then checks what
reached the upstream. Prints "openai tools: all checks passed"; on a failed check prints it and
exits 1.
"""
import json
import sys

import openai

TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
# Past 2^53: a JSON number a double would round (to ...992), so it shows whether it went through unchanged.
SEED = 9007199254740993


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)


def main():
    base_url, key, model, kind = sys.argv[1:5]
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)

    # 1. The model calls a tool.
    first = client.chat.completions.create(
        model=model, messages=QUESTION, tools=TOOLS, tool_choice="auto", seed=SEED, top_p=0.5, stop=["\n\n"], max_tokens=32
    )
    choice = first.choices[0]
    check(choice.finish_reason == "tool_calls", f"finish_reason is tool_calls: {choice.finish_reason!r}")
    calls = choice.message.tool_calls or []
    check(len(calls) == 1, f"one tool call: {choice.message}")
    call = calls[0]
    check(call.type == "function" and call.function.name == "get_weather", f"the call names the tool: {call}")
    check(json.loads(call.function.arguments) == {"city": "Paris"}, f"the call's arguments: {call.function.arguments!r}")
    check(isinstance(call.id, str) and call.id != "", f"the call has an id: {call.id!r}")
    if kind == "openai":
        check(first.system_fingerprint == "fp_fake", f"system_fingerprint passed on: {first.system_fingerprint!r}")

    # 2. The tool's answer goes back with the call's id; the model answers.
    conversation = QUESTION + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"sky": "sunny"})},
    ]
    second = client.chat.completions.create(model=model, messages=conversation, tools=TOOLS, max_tokens=32)
    check(second.choices[0].message.content == "It is sunny", f"the answer after the tool: {second.choices[0].message}")
    check(second.choices[0].finish_reason == "stop", f"finish_reason after the tool: {second.choices[0].finish_reason!r}")

    # 3. Streamed: the call arrives as deltas, put together by index.
    names, arguments, finish, ids = {}, {}, None, {}
    for chunk in client.chat.completions.create(model=model, messages=QUESTION, tools=TOOLS, stream=True, max_tokens=32):
        for streamed in chunk.choices:
            for delta in streamed.delta.tool_calls or []:
                if delta.id:
                    ids[delta.index] = delta.id
                if delta.function and delta.function.name:
                    names[delta.index] = delta.function.name
                if delta.function and delta.function.arguments:
                    arguments[delta.index] = arguments.get(delta.index, "") + delta.function.arguments
            if streamed.finish_reason:
                finish = streamed.finish_reason
    check(names == {0: "get_weather"}, f"streamed tool name: {names}")
    check(json.loads(arguments.get(0, "null")) == {"city": "Paris"}, f"streamed arguments: {arguments}")
    check(0 in ids, f"streamed call id: {ids}")
    check(finish == "tool_calls", f"streamed finish_reason: {finish!r}")

    # 4. JSON mode and a JSON schema.
    for response_format in (
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "weather", "schema": {"type": "object", "properties": {"sky": {"type": "string"}}}}},
    ):
        answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "JSON please"}], response_format=response_format)
        check(answer.choices[0].message.content == "It is sunny", f"{response_format['type']}: {answer.choices[0].message}")

    if kind == "openai":
        # 5. What OpenAI itself takes: logprobs back, user and logit_bias on.
        answer = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], logprobs=True, user="user-7", logit_bias={"50256": -100},
            presence_penalty=0.5, frequency_penalty=0.25,
        )
        logprobs = answer.choices[0].logprobs
        check(logprobs is not None and logprobs.content[0].logprob == -0.25, f"logprobs passed on: {logprobs}")
    else:
        # 5. What Ollama cannot honour is refused, naming the field, before anything is sent.
        for extra, field in (({"logit_bias": {"50256": -100}}, "logit_bias"), ({"user": "user-7"}, "user"), ({"tool_choice": "required", "tools": TOOLS}, "tool_choice")):
            try:
                client.chat.completions.create(model=model, messages=QUESTION, **extra)
                check(False, f"{field} is refused on Ollama")
            except openai.BadRequestError as error:
                check(field in str(error), f"the 400 names {field}: {error}")

    print("openai tools: all checks passed")


if __name__ == "__main__":
    main()
