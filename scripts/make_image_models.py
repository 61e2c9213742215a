#!/usr/bin/env python3
"""Trains Cortex's two bundled ONNX image classifiers and writes ONNX Runtime's outputs as fixtures.

The data is scikit-learn's bundled handwritten digits (1,797 grey 8x8 images, ink 0..16). Both
models take `image`, FP32 [N, 1, H, W] with pixels in 0..1 (ink bright), at any H and W: the
graph first resizes (bilinear, antialiased) to 8x8, so the A/B image service's `img_size` can be anything.
They answer `probabilities`, FP32 [N, 10].

    models/vA.onnx   variant A: a multi-layer perceptron (64 -> 512 ReLU -> 512 ReLU -> 10), trained by
                     scikit-learn; big enough that merging requests (dynamic batching) pays
    models/vB.onnx   variant B: a small convolutional net: 8 fixed 3x3 filters (seeded), ReLU,
                     2x2 average pooling, then a softmax layer trained by scikit-learn
    models/vA.yaml, models/vB.yaml          how Cortex serves them (image preprocessing, labels)
    models/digits/*.png, *.jpg              real test images (8x8, and larger copies)
    models/digits/expected.json             ONNX Runtime's probabilities for each image and model, as
                                            computed on this machine: exact here only, within a relative
                                            1e-5 on other CPUs (the tests' exact reference is made at test
                                            time by Tests/Python/onnx_reference.py)
    Tests/CortexRuntimeTests/Fixtures/types.onnx   one Identity per element type, for datatype tests

Deterministic: fixed seeds. Needs numpy, scikit-learn, onnx, onnxruntime and pillow:
    make image-models     (installs them into .venv and runs this script)
"""
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
IMAGES = MODELS / "digits"
OPSET = 18  # Resize's `antialias` needs 18


def data():
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)  # [n, 8, 8], 0..1, ink bright
    return train_test_split(X, digits.target, test_size=0.25, random_state=7, stratify=digits.target)


def resize_nodes():
    """image [N,1,H,W] -> x8 [N,1,8,8]: keep N and C, resize H and W to 8."""
    return [
        helper.make_node("Shape", ["image"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "two"], ["nc"]),
        helper.make_node("Concat", ["nc", "eight_eight"], ["sizes"], axis=0),
        helper.make_node(
            "Resize", ["image", "", "", "sizes"], ["x8"], mode="linear", antialias=1,
            coordinate_transformation_mode="half_pixel",
        ),
    ], [
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "two"),
        numpy_helper.from_array(np.array([8, 8], dtype=np.int64), "eight_eight"),
    ]


def graph(name, nodes, initializers):
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, "height", "width"])
    probabilities = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])
    model = helper.make_model(
        helper.make_graph(nodes, name, [image], [probabilities], initializer=initializers),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="cortex/scripts/make_image_models.py",
    )
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def variant_a(X, y):
    mlp = MLPClassifier(hidden_layer_sizes=(512, 512), activation="relu", max_iter=300, random_state=0)
    mlp.fit(X.reshape(len(X), 64), y)
    nodes, inits = resize_nodes()
    nodes.append(helper.make_node("Flatten", ["x8"], ["h0"], axis=1))
    layers = len(mlp.coefs_)
    for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        out = "logits" if i == layers - 1 else f"g{i}"
        nodes.append(helper.make_node("Gemm", [f"h{i}", f"w{i}", f"b{i}"], [out]))
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [out], [f"h{i + 1}"]))
        inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"), numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    return graph("digits_mlp", nodes, inits), lambda X: mlp.predict_proba(X.reshape(len(X), 64))


FILTERS = np.random.default_rng(11).normal(0, 1, size=(8, 1, 3, 3)).astype(np.float32)


def conv_features(X):
    """numpy twin of the graph's Conv(pad 1) -> Relu -> AveragePool(2x2) -> Flatten."""
    padded = np.pad(X, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((len(X), 8, 8, 8), dtype=np.float32)
    for f in range(8):
        for i in range(3):
            for j in range(3):
                out[:, f] += FILTERS[f, 0, i, j] * padded[:, i : i + 8, j : j + 8]
    out = np.maximum(out, 0)
    pooled = out.reshape(len(X), 8, 4, 2, 4, 2).mean(axis=(3, 5))
    return pooled.reshape(len(X), 8 * 4 * 4)


def variant_b(X, y):
    lr = LogisticRegression(max_iter=2000, C=1.0)
    lr.fit(conv_features(X), y)
    nodes, inits = resize_nodes()
    nodes += [
        helper.make_node("Conv", ["x8", "filters"], ["c"], pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["cr"]),
        helper.make_node("AveragePool", ["cr"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w", "b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    inits += [
        numpy_helper.from_array(FILTERS, "filters"),
        numpy_helper.from_array(lr.coef_.astype(np.float32), "w"),
        numpy_helper.from_array(lr.intercept_.astype(np.float32), "b"),
    ]
    return graph("digits_cnn", nodes, inits), lambda X: lr.predict_proba(conv_features(X))


CONFIG = """# How Cortex serves {name} (scripts/make_image_models.py writes this file).
version: "1.0.0"
description: "{description}"
image:
  color: gray          # decode to one channel
  scale: 0.00392156862745098   # 1/255: pixels to 0..1, as the model was trained
  mean: [0.0]
  std: [1.0]
  labels: ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
warmup:
  runs: 20             # synthetic inferences before the model counts as ready
batching:              # merge concurrent requests into one ONNX Runtime call
  max_batch_size: 64
  max_queue_delay_us: 0  # never wait: batch what queued up while the last batch ran
  max_queue: 1024
"""


TYPES = [
    ("fp32", TensorProto.FLOAT), ("fp64", TensorProto.DOUBLE), ("fp16", TensorProto.FLOAT16),
    ("int8", TensorProto.INT8), ("int16", TensorProto.INT16), ("int32", TensorProto.INT32), ("int64", TensorProto.INT64),
    ("uint8", TensorProto.UINT8), ("uint16", TensorProto.UINT16), ("uint32", TensorProto.UINT32),
    ("uint64", TensorProto.UINT64), ("bool", TensorProto.BOOL), ("bytes", TensorProto.STRING),
]


def types_model():
    """x_<type> [-1, 2] -> y_<type> = Identity(x): every element type Cortex carries, round trip."""
    inputs = [helper.make_tensor_value_info(f"x_{n}", t, ["n", 2]) for n, t in TYPES]
    outputs = [helper.make_tensor_value_info(f"y_{n}", t, ["n", 2]) for n, t in TYPES]
    nodes = [helper.make_node("Identity", [f"x_{n}"], [f"y_{n}"]) for n, _ in TYPES]
    model = helper.make_model(helper.make_graph(nodes, "types", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path = ROOT / "Tests" / "CortexRuntimeTests" / "Fixtures" / "types.onnx"
    onnx.save(model, path)
    return path


def main():
    types_model()
    X_train, X_test, y_train, y_test = data()
    MODELS.mkdir(exist_ok=True)
    IMAGES.mkdir(exist_ok=True)
    sessions = {}
    for name, make, description in [
        ("vA", variant_a, "handwritten digits, multi-layer perceptron"),
        ("vB", variant_b, "handwritten digits, small convolutional net"),
    ]:
        model, reference = make(X_train, y_train)
        path = MODELS / f"{name}.onnx"
        onnx.save(model, path)
        (MODELS / f"{name}.yaml").write_text(CONFIG.format(name=name, description=description))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        ours = session.run(None, {"image": X_test[:, None, :, :]})[0]
        theirs = reference(X_test)
        assert np.abs(ours - theirs).max() < 1e-4, f"{name}: ONNX graph differs from scikit-learn"
        accuracy = float((ours.argmax(axis=1) == y_test).mean())
        print(f"{name}: {description}: test accuracy {accuracy:.3f} on {len(y_test)} images")
        sessions[name] = session

    # Real test images: the first two of each class in the test split, as 8x8 PNG (exact pixels),
    # plus a 64x64 PNG and a JPEG of the first few.
    expected = {"images": []}
    chosen = []
    for digit in range(10):
        chosen += [i for i in np.flatnonzero(y_test == digit)[:2]]
    for n, index in enumerate(chosen):
        pixels = np.round(X_test[index] * 255).astype(np.uint8)
        stem = f"digit{y_test[index]}_{n % 2}"
        files = [(f"{stem}.png", Image.fromarray(pixels, "L"), 8)]
        if n < 4:
            files.append((f"{stem}_64.png", Image.fromarray(pixels, "L").resize((64, 64), Image.NEAREST), 64))
            files.append((f"{stem}.jpg", Image.fromarray(pixels, "L").resize((32, 32), Image.NEAREST), 32))
        for file, picture, size in files:
            if file.endswith(".jpg"):
                picture.save(IMAGES / file, quality=95)
            else:
                picture.save(IMAGES / file)
            entry = {"file": file, "label": int(y_test[index]), "size": size}
            if size == 8:
                # The exact tensor Cortex makes from an 8x8 image at img_size 8: pixel / 255.
                tensor = (pixels.astype(np.float32) / np.float32(255))[None, None, :, :]
                entry["pixels"] = pixels.flatten().tolist()
                for name, session in sessions.items():
                    entry[name] = session.run(None, {"image": tensor})[0][0].tolist()
            expected["images"].append(entry)
    # A batch of the 8x8 images through each model at once, to check batched parity.
    (IMAGES / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print("wrote", MODELS / "vA.onnx", MODELS / "vB.onnx", "and", len(expected["images"]), "images in", IMAGES)


if __name__ == "__main__":
    main()
