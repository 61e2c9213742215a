-- wrk script: POST one lead-scoring row through the Open Inference Protocol.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "demo-api-key-123"
wrk.body = '{"inputs":[{"name":"features","shape":[1,10],"datatype":"FP32","data":[250,40.5,1,14,6,1,2,1,4,1]}]}'
