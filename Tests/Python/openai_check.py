#!/usr/bin/env python3
"""Drives a running Cortex with OpenAI's official Python client (`openai` on PyPI), unchanged.

    .venv/bin/python Tests/Python/openai_check.py BASE_URL API_KEY MODEL [EXPECTED_TEXT]

BASE_URL is Cortex's OpenAI-compatible root, e.g. http://127.0.0.1:8000/v1. With EXPECTED_TEXT
(a fake upstream) every answer must be exactly that text; without it (a real model) answers must
be non-empty. Checks: the model list, a chat, a streamed chat with usage, a completion, and that an
unknown model is the client's NotFoundError. Prints one JSON line of figures, then
"openai: all checks passed"; on a failed check prints it and exits 1.
LLMServingTests and scripts/llm-real.sh run it.
"""
import json
import sys
import time

import openai


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)


def main():
    base_url, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
    expected = sys.argv[4] if len(sys.argv) > 4 else None
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=120)

    def text_ok(text, what):
        if expected is None:
            check(isinstance(text, str) and text.strip() != "", f"{what}: empty answer")
        else:
            check(text == expected, f"{what}: got {text!r}, expected {expected!r}")

    ids = [m.id for m in client.models.list().data]
    check(model in ids, f"models.list() lists {model}: {ids}")

    messages = [{"role": "user", "content": "Say hello in one word."}]
    started = time.perf_counter()
    chat = client.chat.completions.create(model=model, messages=messages, max_tokens=16)
    chat_s = time.perf_counter() - started
    text_ok(chat.choices[0].message.content, "chat")
    check(chat.choices[0].message.role == "assistant", "chat: role is assistant")
    check(chat.usage is not None and chat.usage.prompt_tokens > 0 and chat.usage.completion_tokens > 0, f"chat usage: {chat.usage}")
    check(chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens, "chat usage adds up")

    started = time.perf_counter()
    first_token_s = None
    pieces, usage, finish = [], None, None
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                if first_token_s is None:
                    first_token_s = time.perf_counter() - started
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    stream_s = time.perf_counter() - started
    text_ok("".join(pieces), "streamed chat")
    check(len(pieces) >= 1, "streamed chat: at least one delta")
    check(finish in ("stop", "length"), f"streamed chat: finish reason {finish!r}")
    check(usage is not None and usage.completion_tokens > 0, f"streamed chat usage: {usage}")

    completion = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8)
    text_ok(completion.choices[0].text, "completion")

    try:
        client.chat.completions.create(model="no-such-model", messages=messages)
        check(False, "an unknown model raises NotFoundError")
    except openai.NotFoundError as error:
        check("no-such-model" in str(error), f"the error names the model: {error}")

    print(json.dumps({
        "chat": chat.choices[0].message.content,
        "chat_s": round(chat_s, 4),
        "chat_usage": {"prompt": chat.usage.prompt_tokens, "completion": chat.usage.completion_tokens},
        "stream_deltas": len(pieces),
        "stream_first_token_s": round(first_token_s or 0, 4),
        "stream_s": round(stream_s, 4),
        "completion": completion.choices[0].text,
    }))
    print("openai: all checks passed")


if __name__ == "__main__":
    main()
