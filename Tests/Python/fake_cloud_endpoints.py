"""Loopback stand-ins for the cloud model endpoints Cortex calls, speaking their wire formats.

- SageMaker runtime: POST /endpoints/{name}/invocations, every request's Signature Version 4
  verified by botocore (AWS's own signer), with the keys given or the temporary ones issued by
- a container credentials endpoint: GET /credentials (as ECS and EKS Pod Identity serve it),
  checking its Authorization token;
- Azure ML online endpoint: POST /score with `Authorization: Bearer KEY` and the MLflow
  `input_data` split frame.

Each row's prediction is the fraction of its features present, so a test can tell the
remote's answers from the local model's. GET /requests lists what arrived; POST /mode
{"fail": STATUS} makes every model call answer STATUS (0 to stop).

Usage: fake_cloud_endpoints.py ACCESS_KEY SECRET_KEY REGION CONTAINER_TOKEN AZURE_KEY
Prints "listening on PORT" once it serves, on 127.0.0.1.
"""

import csv
import datetime
import hmac
import io
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY, SECRET_KEY, REGION, CONTAINER_TOKEN, AZURE_KEY = sys.argv[1:6]
TEMPORARY = {
    "AccessKeyId": "ASIATEMPORARYKEY0001",
    "SecretAccessKey": "temporary/secret+key0001",
    "Token": "temporary-session-token-0001",
}
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)

lock = threading.Lock()
state = {"requests": [], "fail": 0, "credential_fetches": 0}


def signature_problem(handler, body):
    """None when botocore computes the same signature for this request, else why not."""
    match = AUTHORIZATION.match(handler.headers.get("Authorization", ""))
    if not match:
        return "no SigV4 Authorization header"
    if match["region"] != REGION or match["service"] != "sagemaker":
        return f"scope {match['region']}/{match['service']}"
    amz_date = handler.headers.get("X-Amz-Date", "")
    if amz_date[:8] != match["day"]:
        return "X-Amz-Date disagrees with the scope"
    if match["key"] == ACCESS_KEY:
        credentials = Credentials(ACCESS_KEY, SECRET_KEY)
    elif match["key"] == TEMPORARY["AccessKeyId"]:
        if handler.headers.get("X-Amz-Security-Token") != TEMPORARY["Token"]:
            return "temporary credentials without their session token"
        credentials = Credentials(TEMPORARY["AccessKeyId"], TEMPORARY["SecretAccessKey"], TEMPORARY["Token"])
    else:
        return f"unknown access key {match['key']}"
    signed = match["signed"].split(";")
    for required in ("host", "x-amz-date", "content-type"):
        if required not in signed:
            return f"{required} is not signed"
    headers = {name: handler.headers[name] for name in signed if handler.headers.get(name) is not None}
    if len(headers) != len(signed):
        return "a signed header is missing"
    request = AWSRequest(
        method=handler.command, url=f"http://{handler.headers['Host']}{handler.path}", data=body, headers=headers
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(credentials, "sagemaker", REGION)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return None if hmac.compare_digest(expected, match["signature"]) else "signature mismatch"


def score(row):
    """The fraction of a row's values present."""
    return round(sum(value is not None for value in row) / len(row), 6)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self, body, **extra):
        entry = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode()}
        entry.update(extra)
        with lock:
            state["requests"].append(entry)
            return state["fail"]

    def do_GET(self):
        if self.path == "/requests":
            with lock:
                self.answer(200, json.dumps({"requests": state["requests"], "credential_fetches": state["credential_fetches"]}))
        elif self.path == "/credentials":
            if self.headers.get("Authorization") != CONTAINER_TOKEN:
                self.answer(403, '{"message": "bad token"}')
                return
            with lock:
                state["credential_fetches"] += 1
            expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            self.answer(200, json.dumps(dict(TEMPORARY, Expiration=expires.strftime("%Y-%m-%dT%H:%M:%SZ"))))
        else:
            self.answer(404, "{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/mode":
            with lock:
                state["fail"] = json.loads(body)["fail"]
            self.answer(200, "{}")
        elif re.fullmatch(r"/endpoints/[A-Za-z0-9-]+/invocations", self.path):
            problem = signature_problem(self, body)
            fail = self.record(body, signature=problem or "valid")
            if problem:
                self.answer(403, json.dumps({"message": f"InvalidSignatureException: {problem}"}))
            elif fail:
                self.answer(fail, '{"ErrorCode": "ModelError", "Message": "the model container failed"}')
            elif self.headers.get("Content-Type") == "application/json":
                # A Triton container: an Open Inference Protocol request and answer.
                tensor = json.loads(body)["inputs"][0]
                count, width = tensor["shape"]
                data = tensor["data"]
                rows = [data[i * width:(i + 1) * width] for i in range(count)]
                outputs = [{"name": "predictions", "shape": [count], "datatype": "FP32", "data": [score(r) for r in rows]}]
                self.answer(200, json.dumps({"model_name": "lead-scoring", "outputs": outputs}))
            elif self.headers.get("Content-Type") != "text/csv":
                self.answer(415, '{"message": "text/csv or application/json only"}')
            else:
                rows = [[float(v) if v != "" else None for v in line] for line in csv.reader(io.StringIO(body.decode()))]
                self.answer(200, json.dumps({"predictions": [{"score": score(row)} for row in rows]}))
        elif self.path == "/score":
            fail = self.record(body)
            if self.headers.get("Authorization") != f"Bearer {AZURE_KEY}":
                self.answer(401, '{"message": "key_auth_access_denied"}')
            elif fail:
                self.answer(fail, '{"message": "An unexpected error occurred in scoring script."}')
            else:
                frame = json.loads(body)["input_data"]
                if len(frame["index"]) != len(frame["data"]) or any(len(r) != len(frame["columns"]) for r in frame["data"]):
                    self.answer(400, '{"message": "bad frame"}')
                    return
                self.answer(200, json.dumps([score(row) for row in frame["data"]]))
        else:
            self.answer(404, "{}")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
