#!/usr/bin/env python3
"""OpenAI's official Python client (`openai` on PyPI), unchanged, against Cortex's POST /v1/embeddings.

    .venv/bin/python Tests/Python/openai_embeddings_check.py BASE_URL API_KEY MODEL TEXTS.json

Embeds TEXTS.json's texts as floats and, as the client asks by default, as base64; checks that
both agree, are in order and have unit length, that usage counts the tokens, and that a wrong
model, dimensions Cortex cannot honour, an empty text and token ids are the client's errors.
Prints one JSON line, {"vectors", "prompt_tokens", "charged"} (the X-Credits-Charged of each
successful request), then "openai embeddings: all checks passed"; on a failed check prints it and
exits 1. EmbeddingTests compares the vectors with Hugging Face's stack and the charges with the balance.
"""
import json
import math
import sys

import openai


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)


def main():
    base_url, key, model, texts_path = sys.argv[1:5]
    texts = json.load(open(texts_path, encoding="utf-8"))
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
    charged = []

    raw = client.embeddings.with_raw_response.create(model=model, input=texts, encoding_format="float")
    charged.append(raw.headers.get("x-credits-charged"))
    floats = raw.parse()
    check([item.index for item in floats.data] == list(range(len(texts))), "one embedding per text, in order")
    check(floats.model == model, f"the model is named: {floats.model}")
    check(floats.usage.prompt_tokens > 0 and floats.usage.total_tokens == floats.usage.prompt_tokens, f"usage: {floats.usage}")
    for item in floats.data:
        check(abs(math.sqrt(sum(x * x for x in item.embedding)) - 1) < 1e-5, f"embedding {item.index} has unit length")

    # The client's default: base64 on the wire, decoded by the client.
    raw = client.embeddings.with_raw_response.create(model=model, input=texts)
    charged.append(raw.headers.get("x-credits-charged"))
    decoded = raw.parse()
    for a, b in zip(floats.data, decoded.data):
        check(len(a.embedding) == len(b.embedding) and max(abs(x - y) for x, y in zip(a.embedding, b.embedding)) < 1e-7,
              f"base64 and float agree for {a.index}")

    raw = client.embeddings.with_raw_response.create(model=model, input=texts[0], dimensions=len(floats.data[0].embedding))
    charged.append(raw.headers.get("x-credits-charged"))
    check(len(raw.parse().data) == 1, "one string is one embedding")

    for kwargs, error, words in (
        ({"model": "no-such-model", "input": "x"}, openai.NotFoundError, "no-such-model"),
        # Values Cortex cannot use are its 422 invalid_input (the client's UnprocessableEntityError).
        ({"model": model, "input": "x", "dimensions": 128}, openai.UnprocessableEntityError, "dimensions"),
        ({"model": model, "input": ""}, openai.UnprocessableEntityError, "empty"),
        ({"model": model, "input": [[101, 102]]}, openai.UnprocessableEntityError, "token ids"),
        ({"model": model, "input": ["x"] * 2049}, openai.UnprocessableEntityError, "2048"),
        ({"model": model, "input": "x", "encoding_format": "int8"}, openai.UnprocessableEntityError, "encoding_format"),
        ({"model": model, "input": "x", "extra_body": {"truncate": "END"}}, openai.UnprocessableEntityError, "truncate"),
    ):
        try:
            client.embeddings.create(**kwargs)
            check(False, f"{kwargs} is refused")
        except error as refused:
            check(words in str(refused), f"the error says {words!r}: {refused}")

    print(json.dumps({"vectors": [item.embedding for item in floats.data], "prompt_tokens": floats.usage.prompt_tokens, "charged": charged}))
    print("openai embeddings: all checks passed")


if __name__ == "__main__":
    main()
