#!/usr/bin/env python3
"""Drives a running Cortex with NVIDIA's official `tritonclient[http]` (PyPI), JSON and binary.

    .venv/bin/python Tests/Python/tritonclient_check.py HOST:PORT API_KEY

Exits 0 and prints "tritonclient: all checks passed" when every check holds; otherwise prints
the failed check and exits 1. CortexServerTests' InferenceProtocolClientTests runs it.
"""
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import onnx_reference


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}")
        sys.exit(1)


def main():
    url, key = sys.argv[1], sys.argv[2]
    # tritonclient adds Inference-Header-Content-Length to the dict it is given: a copy per call.
    headers = {"X-API-Key": key}
    client = httpclient.InferenceServerClient(url=url)
    check(client.is_server_live(), "server live")
    check(client.is_server_ready(), "server ready")
    check(client.is_model_ready("vA"), "vA ready")
    server = client.get_server_metadata()
    check(server["name"] == "cortex" and "binary_tensor_data" in server["extensions"], f"server metadata {server}")

    metadata = client.get_model_metadata("vA")
    check(metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, -1, -1]}], f"inputs {metadata['inputs']}")
    check(metadata["outputs"][0]["name"] == "probabilities", f"outputs {metadata['outputs']}")
    config = client.get_model_config("vA")
    check(config["max_batch_size"] > 1 and config["input"][0]["dims"] == [1, -1, -1], f"config {config}")

    # ONNX Runtime's own answers on this machine (floats differ between processors in the last
    # bits, so a fixture made elsewhere cannot be compared bit for bit).
    images = onnx_reference.images()
    pixels = onnx_reference.tensor(images)
    reference = onnx_reference.reference()["models"]

    for binary in (True, False):
        for model in ("vA", "vB"):
            for start, count in ((0, 1), (3, 4)):
                x = pixels[start : start + count]
                inputs = [httpclient.InferInput("image", list(x.shape), "FP32")]
                inputs[0].set_data_from_numpy(x, binary_data=binary)
                outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary)]
                result = client.infer(model, inputs, outputs=outputs, headers=dict(headers), request_id=f"tc-{model}-{binary}-{start}")
                got = result.as_numpy("probabilities")
                want = np.array(reference[model]["single"][start : start + count], dtype=np.float32)
                check(got.dtype == np.float32 and got.shape == (count, 10), f"{model} shape {got.shape} {got.dtype}")
                check(np.array_equal(got, want), f"{model} binary={binary}: {got} != {want}")
                check(result.get_response()["id"] == f"tc-{model}-{binary}-{start}", "id echoed")

    # Binary input, JSON output, and the other way round, in one request each.
    x = pixels[:2]
    inputs = [httpclient.InferInput("image", [2, 1, 8, 8], "FP32")]
    inputs[0].set_data_from_numpy(x, binary_data=True)
    result = client.infer("vA", inputs, outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=False)], headers=dict(headers))
    check(np.array_equal(result.as_numpy("probabilities"), np.array(reference["vA"]["single"][:2], dtype=np.float32)), "mixed")

    # Bad requests are refused with 400 and the reason.
    bad = [httpclient.InferInput("image", [1, 1, 8], "FP32")]
    bad[0].set_data_from_numpy(np.zeros((1, 1, 8), dtype=np.float32), binary_data=True)
    try:
        client.infer("vA", bad, headers=dict(headers))
        check(False, "a wrong shape was accepted")
    except InferenceServerException as error:
        check("shape" in error.message() and "400" in str(error.status()), f"wrong shape error: {error}")
    wrong_type = [httpclient.InferInput("image", [1, 1, 8, 8], "FP64")]
    wrong_type[0].set_data_from_numpy(np.zeros((1, 1, 8, 8), dtype=np.float64), binary_data=True)
    try:
        client.infer("vA", wrong_type, headers=dict(headers))
        check(False, "a wrong datatype was accepted")
    except InferenceServerException as error:
        check("FP32" in error.message(), f"wrong type error: {error}")

    stats = client.get_inference_statistics("vA")["model_stats"][0]
    check(stats["inference_count"] == 12 and stats["inference_stats"]["success"]["count"] == 5, f"stats {stats}")
    print("tritonclient: all checks passed")


if __name__ == "__main__":
    main()
