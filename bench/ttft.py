#!/usr/bin/env python3
"""Time to first token of a streamed chat completion, sequentially, over one kept-alive connection.

    python3 bench/ttft.py HOST:PORT COUNT [PATH]

Sends COUNT streamed requests (after 20 warm-up ones) and prints "p50_ms p99_ms" of the time from
sending the request to reading the first server-sent event that carries content.
"""
import http.client
import json
import sys
import time

host, port = sys.argv[1].split(":")
count = int(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/v1/chat/completions"
body = json.dumps({"model": "fake-model", "stream": True, "max_tokens": 16,
                   "messages": [{"role": "user", "content": "Say hello"}]}, separators=(",", ":"))
headers = {"Content-Type": "application/json", "X-API-Key": "demo-api-key-123"}
connection = http.client.HTTPConnection(host, int(port))
samples = []
for index in range(count + 20):
    started = time.perf_counter()
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    assert response.status == 200, response.status
    first = None
    while True:
        line = response.readline()
        if not line:
            break
        if first is None and line.startswith(b"data: ") and b'"content":"' in line and b'"content":""' not in line:
            first = time.perf_counter() - started
    assert first is not None, "no token arrived"
    if index >= 20:
        samples.append(first * 1000)
samples.sort()
print(f"{samples[len(samples) // 2]:.3f} {samples[min(len(samples) - 1, int(len(samples) * 0.99))]:.3f}")
