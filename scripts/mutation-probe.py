#!/usr/bin/env python3
"""Sends mutated requests to every POST route of a real Cortex for a bounded time, and reports
every answer that is not a client error: a 5xx, a dropped connection, or the process dying.

    python3 scripts/mutation-probe.py [--seconds 600] [--binary .build/release/cortex] [--seed N]

It starts the binary itself on a loopback port with a throw-away SQLite database, an admin
token, priced models (so billing runs) and an OpenAI-compatible fake upstream of its own (so the
LLM routes run). Each request is a valid one, mutated: JSON values replaced by hostile ones
(huge, negative, fractional, wrong types, long strings, deep nesting), bytes flipped, cut or
inserted, headers changed (lengths, chunked framing, binary-data header lengths, idempotency
keys). At the end it checks the ledger with `cortex db verify`. Exits 1 on any finding.

Only 127.0.0.1 is ever contacted; the run stops by itself after --seconds.
"""
import argparse
import base64
import collections
import copy
import http.server
import json
import os
import pathlib
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
ADMIN = "mutation-probe-admin-token-0123456789"
KEY = "demo-api-key-123"


class FakeUpstream(http.server.BaseHTTPRequestHandler):
    """OpenAI's chat and completion APIs, whole or streamed, answering 'ok fine' at once."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_json({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        try:
            request = json.loads(body)
        except ValueError:
            request = {}
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        completion = self.path.endswith("/completions") and "chat" not in self.path
        if request.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for index, word in enumerate(["ok ", "fine"]):
                choice = {"index": 0, "finish_reason": "stop" if index == 1 else None}
                choice.update({"text": word} if completion else {"delta": {"content": word}})
                self.chunk("data: " + json.dumps({"id": "f", "object": "chat.completion.chunk", "choices": [choice], "usage": usage if index == 1 else None}) + "\n\n")
            self.chunk("data: [DONE]\n\n")
            self.chunk("")
        else:
            choice = {"index": 0, "finish_reason": "stop"}
            choice.update({"text": "ok fine"} if completion else {"message": {"role": "assistant", "content": "ok fine"}})
            self.send_json({"id": "f", "object": "chat.completion", "choices": [choice], "usage": usage})

    def chunk(self, text):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def send_json(self, value):
        data = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seeds():
    """One valid request per POST route (method, path, headers, body bytes)."""
    lead = json.loads((ROOT / "docs/examples/sample_request_1.json").read_text())
    batch = json.loads((ROOT / "docs/examples/sample_request_batch.json").read_text())
    infer = json.loads((ROOT / "docs/examples/infer_request.json").read_text())
    image = base64.b64encode((ROOT / "models/digits/digit3_0.png").read_bytes()).decode()
    pixels = [0.5] * 64
    binary = struct.pack("<64f", *pixels)
    header = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP32", "parameters": {"binary_data_size": len(binary)}}]})
    user = {"X-API-Key": KEY, "Content-Type": "application/json"}
    admin = {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"}
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
    return [
        ("/api/v1/score", user, lead),
        ("/api/v1/score", user, batch),
        ("/v2/models/lead-scoring/infer", user, infer),
        ("/v2/models/lead-scoring/versions/1.0.0/infer", user, infer),
        ("/v2/models/vA/infer", user, {"inputs": [{"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": pixels}]}),
        ("/v2/models/vB/infer", dict(user, **{"Inference-Header-Content-Length": str(len(header))}), header.encode() + binary),
        ("/v1/infer", user, {"image_b64": image, "img_size": 8, "model": "vB", "top_k": 3}),
        ("/generate", user, {"prompt": "hello", "max_tokens": 8}),
        ("/generate", user, {"prompt": "hello", "max_tokens": 8, "stream": True}),
        ("/chat", user, {"message": "hello", "max_tokens": 8}),
        ("/v1/chat/completions", user, chat),
        ("/v1/chat/completions", user, dict(chat, stream=True, stream_options={"include_usage": True})),
        ("/v1/completions", user, {"model": "chat", "prompt": "hello", "max_tokens": 8}),
        ("/admin/tenants", admin, {"name": "acme"}),
        ("/admin/tenants/demo/keys", admin, {"scopes": ["infer"]}),
        ("/admin/tenants/demo/credits", admin, {"amount": "1.5", "note": "probe"}),
        # Revoked and rotated keys are fresh ones of a tenant of their own (see `fresh`), so the
        # demo key the other routes use survives the run.
        ("/admin/keys/{fresh}/revoke", admin, {"grace_s": 0}),
        ("/admin/reload-auth", admin, None),
        ("/ops/reload-auth", admin, None),
        ("/keys/rotate", {"X-API-Key": "{fresh}", "Content-Type": "application/json"}, {"grace_s": 60}),
    ]


def fresh_key(port):
    """A new key of the tenant `probe` (created on first use): its id and its secret."""
    admin = "Authorization: Bearer %s\r\nContent-Type: application/json\r\n" % ADMIN
    for _ in range(2):
        answer, _ = exchange(port, ("POST /admin/tenants/probe/keys HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: 2\r\n\r\n{}" % admin).encode(), 10)
        if answer.startswith(b"HTTP/1.1 201"):
            issued = json.loads(answer.split(b"\r\n\r\n", 1)[1])
            return str(issued["id"]), issued["key"]
        exchange(port, ("POST /admin/tenants HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: 16\r\n\r\n{\"name\":\"probe\"}" % admin).encode(), 10)
    raise RuntimeError("could not issue a key: %r" % answer[:300])


HOSTILE = [
    None, True, False, 0, -1, 1, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 1e308, -1e308, 1e-320, 0.5, -0.0,
    "", "a", "x" * 100_000, "\u0000", "\ud7ff\ue000", "9" * 400, "-1", "1e999", "NaN", "../../etc/passwd", [], {},
    [None] * 10_000, [2**62] * 4, {"a": {"b": {"c": []}}},
]


def mutate_value(value, rng):
    """A copy of a JSON value with one place replaced (or a member added or removed)."""
    value = copy.deepcopy(value)
    places = []

    def walk(node, parent, key):
        places.append((parent, key))
        if isinstance(node, dict):
            for k in list(node):
                walk(node[k], node, k)
        elif isinstance(node, list):
            for i in range(min(len(node), 20)):
                walk(node[i], node, i)

    walk(value, None, None)
    parent, key = rng.choice(places)
    # Sometimes nesting around the parser's depth limit (64), else a hostile scalar or container.
    depth = rng.randint(60, 70)
    replacement = json.loads("[" * depth + "]" * depth) if rng.random() < 0.05 else rng.choice(HOSTILE)
    if parent is None:
        return replacement
    action = rng.random()
    if action < 0.1 and isinstance(parent, dict):
        del parent[key]
    elif action < 0.2 and isinstance(parent, dict):
        parent[rng.choice(["extra", "shape", "data", "datatype", "parameters", "stream", "amount", "model"])] = replacement
    else:
        parent[key] = replacement
    return value


def mutate_bytes(data, rng):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if not data or choice < 0.3:
            data[rng.randrange(len(data) + 1):rng.randrange(len(data) + 1)] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif choice < 0.6:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.8:
            del data[rng.randrange(len(data)):]
        else:
            start = rng.randrange(len(data))
            data[start:start] = data[start:start + rng.randint(1, 64)] * rng.randint(1, 50)
    return bytes(data)


def mutate_headers(headers, body, rng):
    headers = dict(headers)
    choice = rng.random()
    if choice < 0.15:
        headers["Inference-Header-Content-Length"] = str(rng.choice([0, -1, 1, len(body), len(body) + 1, 2**63, 2**64, "x", " 5"]))
    elif choice < 0.25:
        headers["Idempotency-Key"] = rng.choice(["", "k" * 300, "\x01bad", "key-%d" % rng.randrange(5)])
    elif choice < 0.35:
        headers["Content-Type"] = rng.choice(["text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin1"])
    elif choice < 0.45:
        headers["X-Request-ID"] = rng.choice(["", "r" * 1000, "id with spaces", "probe-%d" % rng.randrange(1000)])
    elif choice < 0.5:
        headers.pop("X-API-Key", None)
        headers["Authorization"] = rng.choice(["Bearer", "Bearer " + "k" * 5000, "Basic xyz", "Bearer " + KEY + "x"])
    return headers


def frame(path, headers, body, rng):
    """The request's bytes, usually with a Content-Length, sometimes chunked (well or badly)."""
    lines = ["POST %s HTTP/1.1" % path, "Host: 127.0.0.1", "Connection: close"]
    lines += ["%s: %s" % (k, v) for k, v in headers.items()]
    choice = rng.random()
    if choice < 0.85:
        return ("\r\n".join(lines + ["Content-Length: %d" % len(body), "", ""])).encode() + body
    lines.append("Transfer-Encoding: chunked")
    head = ("\r\n".join(lines + ["", ""])).encode()
    if choice < 0.95:
        chunks = b""
        rest = body
        while rest:
            size = rng.randint(1, max(1, len(rest)))
            chunks += b"%x\r\n%s\r\n" % (size, rest[:size])
            rest = rest[size:]
        return head + chunks + b"0\r\n\r\n"
    bad = rng.choice([b"zz\r\nab\r\n0\r\n\r\n", b"-5\r\nabc\r\n0\r\n\r\n", b"ffffffffffffffffffff\r\nab\r\n0\r\n\r\n", b"5\r\nab\r\n0\r\n\r\n", b"3\r\nabc0\r\n\r\n"])
    return head + bad


def exchange(port, data, timeout):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        answer = b""
        while True:
            try:
                part = s.recv(65536)
            except socket.timeout:
                return answer, "timeout"
            except OSError as error:
                return answer, str(error)
            if not part:
                return answer, None
            answer += part


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--binary", default=str(ROOT / ".build/release/cortex"))
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    rng = random.Random(args.seed)

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeUpstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="cortex-probe-")
    port = free_port()
    environment = dict(
        os.environ, HOST="127.0.0.1", PORT=str(port), DATABASE_URL="sqlite:%s/cortex.db" % work, MIN_FREE_DISK_MB="1",
        ADMIN_TOKEN=ADMIN, MODEL_PRICES="lead-scoring=0.000001,vA=0.000001,vB=0.000001", DEMO_CREDITS="1000000",
        LLM_PRIMARY_URL="http://127.0.0.1:%d" % upstream.server_address[1], LLM_PRIMARY_KIND="openai", LLM_PRIMARY_MODEL="fake-model",
        LLM_PRICE_INPUT_PER_1K="0.001", LLM_PRICE_OUTPUT_PER_1K="0.001", REQUEST_BODY_TIMEOUT_S="1", REQUEST_HEADER_TIMEOUT_S="1",
        LOG_LEVEL="warning",
    )
    log = open(os.path.join(work, "cortex.log"), "wb")
    server = subprocess.Popen([args.binary, "serve"], env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            answer, _ = exchange(port, b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2)
            if answer.startswith(b"HTTP/1.1 200") and b'"llm"' in answer:
                break
        except OSError:
            pass
        time.sleep(0.1)
    print("cortex on port %d (pid %d), seed %d, %.0f s; log in %s" % (port, server.pid, args.seed, args.seconds, log.name))

    statuses = collections.Counter()
    findings = []
    sent = 0
    routes = collections.Counter()
    end = time.time() + args.seconds
    cases = seeds()
    while time.time() < end:
        path, headers, body = rng.choice(cases)
        route = path
        if "{fresh}" in path or "{fresh}" in headers.values():
            key_id, key = fresh_key(port)
            path = path.replace("{fresh}", key_id)
            headers = {name: value.replace("{fresh}", key) for name, value in headers.items()}
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else (body or b"")
        style = rng.random()
        if style < 0.5 and isinstance(body, (dict, list)):
            data = json.dumps(mutate_value(body, rng)).encode()
        elif style < 0.8:
            data = mutate_bytes(data, rng)
        headers = mutate_headers(headers, data, rng) if rng.random() < 0.4 else headers
        request = frame(path, headers, data, rng)
        try:
            answer, failure = exchange(port, request, 10)
        except OSError as error:
            answer, failure = b"", str(error)
        sent += 1
        routes[route] += 1
        status = answer[9:12].decode(errors="replace") if answer.startswith(b"HTTP/1.1 ") else "none"
        statuses[status] += 1
        if server.poll() is not None:
            findings.append(("crash (exit %s)" % server.returncode, path, request[:2000]))
            break
        if status.startswith("5") or status == "none":
            findings.append(("%s %s" % (status, failure or ""), path, request[:2000], answer[:600]))
    alive = server.poll() is None
    server.terminate()
    server.wait(timeout=30)
    verify = subprocess.run([args.binary, "db", "verify"], env=environment, cwd=ROOT, capture_output=True, text=True)
    print("sent %d requests in %.0f s: statuses %s" % (sent, args.seconds, dict(sorted(statuses.items()))))
    print("per route: %s" % dict(routes))
    print("server %s; db verify: %s" % ("alive to the end" if alive else "DIED", (verify.stdout + verify.stderr).strip()))
    for finding in findings[:20]:
        print("FINDING:", finding[0], finding[1], repr(finding[2][:400]), repr(finding[3][:300]) if len(finding) > 3 else "")
    print("%d findings" % len(findings))
    upstream.shutdown()
    failed = bool(findings) or not alive or verify.returncode != 0
    if failed:
        print("kept for a look: %s (the server's log and database)" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
