"""A wide multi-layer perceptron for bench/onnx.sh (batching measured where the model's cost dominates), bench/models.sh and the model-memory test (a session large enough to show in RSS).

    python bench/wide_mlp.py OUT.onnx [HIDDEN]

Input `image` [N,1,8,8] FP32 (the same body as bench/image.lua), flattened, then
64 -> HIDDEN ReLU -> HIDDEN ReLU -> 10 (softmax): vA's shape, wider. Weights are random with a
fixed seed; the model is for timing only and is never committed. Needs numpy and onnx.
"""

import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def main():
    out = sys.argv[1]
    hidden = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    sizes = [64, hidden, hidden, 10]
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Flatten", ["image"], ["h_in"], axis=1)]
    inits = []
    previous = "h_in"
    for i in range(len(sizes) - 1):
        weights = rng.normal(0, 1 / np.sqrt(sizes[i]), (sizes[i], sizes[i + 1])).astype(np.float32)
        inits += [numpy_helper.from_array(weights, f"w{i}"), numpy_helper.from_array(np.zeros(sizes[i + 1], np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [previous, f"w{i}", f"b{i}"], [f"g{i}"]))
        previous = f"g{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [previous], [f"r{i}"]))
            previous = f"r{i}"
    nodes.append(helper.make_node("Softmax", [previous], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "wide_mlp",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    with open(out, "wb") as f:
        f.write(model.SerializeToString())


if __name__ == "__main__":
    main()
