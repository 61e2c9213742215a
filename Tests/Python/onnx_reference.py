#!/usr/bin/env python3
"""ONNX Runtime's own outputs for the bundled digit images, computed here and now.

    .venv/bin/python Tests/Python/onnx_reference.py > reference.json

ONNX Runtime's CPU kernels take different code paths on different processors, so float results
differ in the last bits between machines: a fixture written on one machine is bit-exact only
there. The tests therefore compare Cortex with this reference, made at test time on the machine
under test with the ONNX Runtime release Cortex loads (the same wheel in .venv), and keep
models/digits/expected.json only as a cross-machine check with a tolerance.

The sessions use Cortex's defaults for a model whose manifest sets no `onnx:` options: one
intra-op and one inter-op thread, every graph optimisation. The inputs are the 8x8 images of
models/digits/expected.json as Cortex makes them: pixel / 255 in FP32.

Prints {"onnxruntime": VERSION, "models": {NAME: {"single": [[p0..p9], ...], "batch": [...]}}}:
each image run alone, and all of them in one batch, in the fixture's order.
"""
import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
MODELS = ("vA", "vB")


def images(root=ROOT):
    """The fixture's 8x8 images (those with pixels), in order."""
    fixture = json.loads((root / "models/digits/expected.json").read_text())
    return [image for image in fixture["images"] if "pixels" in image]


def tensor(chosen):
    """`[n, 1, 8, 8]` FP32 of pixel / 255, the tensor Cortex makes from the same pixels."""
    return np.array([image["pixels"] for image in chosen], dtype=np.float32).reshape(-1, 1, 8, 8) / np.float32(255)


def session(name, root=ROOT):
    """An inference session with Cortex's default session options."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(root / "models" / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])


def reference(root=ROOT):
    """Each model's probabilities for each image alone and for all images in one batch."""
    x = tensor(images(root))
    models = {}
    for name in MODELS:
        run = session(name, root)
        single = [run.run(None, {"image": x[i : i + 1]})[0][0] for i in range(len(x))]
        batch = run.run(None, {"image": x})[0]
        models[name] = {"single": [row.tolist() for row in single], "batch": [row.tolist() for row in batch]}
    return {"onnxruntime": ort.__version__, "models": models}


if __name__ == "__main__":
    json.dump(reference(), sys.stdout)
    sys.stdout.write("\n")
