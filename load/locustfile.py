"""The k6 scenarios of load/k6/ for locust, which installs from PyPI (make load-test):

- HealthzUser: GET /healthz (load/k6/healthz.js);
- InferUser: POST /v1/infer with models/digits/digit3_0.png, checking the label (load/k6/infer.js).

    .venv-load/bin/locust -f load/locustfile.py HealthzUser --headless -u 32 -r 32 -t 30s --host http://127.0.0.1:8000

LOAD_WAIT_S paces each user (seconds between its requests; 0 by default). With
LOAD_TIMELINE=PATH, every second's requests, failures and p50/p99 latency (ms) are written
there as JSON when the run ends (load/plot.py draws them).
"""

import base64
import json
import math
import os
import time

from locust import FastHttpUser, constant, events, task

# Seconds each user waits between requests: 0 (as fast as it can) unless LOAD_WAIT_S says.
WAIT = constant(float(os.environ.get("LOAD_WAIT_S", "0")))

API_KEY = os.environ.get("API_KEY", "demo-api-key-123")
with open(os.path.join(os.path.dirname(__file__), "..", "models", "digits", "digit3_0.png"), "rb") as image:
    BODY = {"image_b64": base64.b64encode(image.read()).decode()}

seconds = {}


@events.request.add_listener
def record(response_time, exception, **_):
    bucket = seconds.setdefault(int(time.time()), {"latencies": [], "failures": 0})
    bucket["latencies"].append(response_time)
    if exception is not None:
        bucket["failures"] += 1


@events.quitting.add_listener
def write_timeline(**_):
    path = os.environ.get("LOAD_TIMELINE")
    if not path or not seconds:
        return
    start = min(seconds)

    def percentile(values, share):
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]

    timeline = [
        {
            "second": second - start,
            "requests": len(bucket["latencies"]),
            "failures": bucket["failures"],
            "p50_ms": percentile(bucket["latencies"], 0.5),
            "p99_ms": percentile(bucket["latencies"], 0.99),
        }
        for second, bucket in sorted(seconds.items())
    ]
    with open(path, "w") as out:
        json.dump(timeline, out, indent=1)


class HealthzUser(FastHttpUser):
    wait_time = WAIT

    @task
    def healthz(self):
        with self.client.get("/healthz", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")


class InferUser(FastHttpUser):
    wait_time = WAIT

    @task
    def infer(self):
        headers = {"X-API-Key": API_KEY}
        with self.client.post("/v1/infer", json=BODY, headers=headers, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            elif response.json().get("label") != "3":
                response.failure(f"label {response.json().get('label')}")
