"""The embedding service users build today, for bench/embeddings.sh to measure Cortex against:
FastAPI with Hugging Face's `tokenizers` and ONNX Runtime, mean pooling and normalisation in
numpy, answering OpenAI's POST /v1/embeddings shape (floats). Run with uvicorn:

    MODEL_DIR=models/embeddings/all-MiniLM-L6-v2 .venv-bench/bin/uvicorn --app-dir bench embeddings_fastapi:app --port 18131 --workers 2
"""
import os

import numpy
import onnxruntime
from fastapi import FastAPI
from pydantic import BaseModel
from tokenizers import Tokenizer

DIRECTORY = os.environ["MODEL_DIR"]
tokenizer = Tokenizer.from_file(os.path.join(DIRECTORY, "tokenizer.json"))
tokenizer.enable_truncation(max_length=256)
tokenizer.enable_padding()
options = onnxruntime.SessionOptions()
# One thread per operator, as Cortex runs it; uvicorn's workers give the parallelism.
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = onnxruntime.InferenceSession(os.path.join(DIRECTORY, "onnx", "model.onnx"), options, providers=["CPUExecutionProvider"])
app = FastAPI()


class EmbeddingRequest(BaseModel):
    model: str
    input: str | list[str]


@app.post("/v1/embeddings")
def embed(request: EmbeddingRequest):
    texts = [request.input] if isinstance(request.input, str) else request.input
    encodings = tokenizer.encode_batch(texts)
    ids = numpy.array([e.ids for e in encodings], dtype=numpy.int64)
    mask = numpy.array([e.attention_mask for e in encodings], dtype=numpy.int64)
    tokens = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": numpy.zeros_like(ids)})[0]
    weights = mask[:, :, None].astype(numpy.float32)
    means = (tokens * weights).sum(axis=1) / numpy.maximum(weights.sum(axis=1), 1e-9)
    vectors = means / numpy.maximum(numpy.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    used = int(mask.sum())
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
        "model": request.model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }
