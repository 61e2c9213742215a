-- wrk script: POST one lead to the lead-scoring API's scoring route.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "demo-api-key-123"
wrk.body = '{"features":{"pages_viewed":12,"email_opens":3,"company_size":250}}'
