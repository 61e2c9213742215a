#!/usr/bin/env python3
"""What Hugging Face's stack makes of texts with a sentence-transformers model directory, for
EmbeddingTests to compare Cortex with: token ids from `tokenizers` (cut to the model's
max_seq_length, as sentence-transformers cuts them), and vectors from ONNX Runtime with
sentence-transformers' pooling (the mean of the token vectors under the attention mask) and
normalisation (unit length).

    .venv/bin/python Tests/Python/embedding_reference.py MODEL_DIR TEXTS.json

TEXTS.json is a JSON list of strings; prints {"ids": [[...]], "vectors": [[...]]}.
"""
import json
import os
import sys

import numpy
import onnxruntime
from tokenizers import Tokenizer


def main():
    directory, texts_path = sys.argv[1], sys.argv[2]
    texts = json.load(open(texts_path, encoding="utf-8"))
    config = json.load(open(os.path.join(directory, "sentence_bert_config.json")))
    tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    tokenizer.enable_truncation(max_length=config["max_seq_length"])
    tokenizer.no_padding()
    session = onnxruntime.InferenceSession(os.path.join(directory, "onnx", "model.onnx"), providers=["CPUExecutionProvider"])
    ids, vectors = [], []
    for text in texts:
        encoding = tokenizer.encode(text)
        ids.append(encoding.ids)
        feed = {
            "input_ids": numpy.array([encoding.ids], dtype=numpy.int64),
            "attention_mask": numpy.array([encoding.attention_mask], dtype=numpy.int64),
            "token_type_ids": numpy.zeros((1, len(encoding.ids)), dtype=numpy.int64),
        }
        tokens = session.run(None, feed)[0][0].astype(numpy.float64)
        mask = numpy.array(encoding.attention_mask, dtype=numpy.float64)[:, None]
        mean = (tokens * mask).sum(axis=0) / max(mask.sum(), 1e-9)
        vectors.append((mean / max(numpy.linalg.norm(mean), 1e-12)).tolist())
    print(json.dumps({"ids": ids, "vectors": vectors}))


if __name__ == "__main__":
    main()
