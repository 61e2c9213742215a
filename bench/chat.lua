-- wrk script: one OpenAI-style chat completion (not streamed), with the demo key.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "demo-api-key-123"
wrk.body = '{"model":"fake-model","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}'
