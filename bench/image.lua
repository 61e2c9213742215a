-- wrk script: POST one 8x8 digit (a bundled test image) to the ONNX classifier through the
-- Open Inference Protocol, JSON form. The path comes from the URL given to wrk.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "demo-api-key-123"
wrk.body = '{"inputs":[{"name":"image","shape":[1,1,8,8],"datatype":"FP32","data":[0.0,0.0,0.18823529,0.68627451,0.43921569,0.0627451,0.0,0.0,0.0,0.0,0.62352941,0.9372549,0.8745098,0.8745098,0.0,0.0,0.0,0.1254902,1.0,0.62352941,0.0627451,0.74901961,0.25098039,0.0,0.0,0.1254902,1.0,0.18823529,0.0,0.25098039,0.50196078,0.0,0.0,0.31372549,0.74901961,0.0,0.0,0.37647059,0.50196078,0.0,0.0,0.0627451,0.74901961,0.0,0.0,0.68627451,0.56078431,0.0,0.0,0.0,0.9372549,0.56078431,0.8745098,0.9372549,0.0627451,0.0,0.0,0.0,0.25098039,0.9372549,0.9372549,0.25098039,0.0,0.0]}]}'
