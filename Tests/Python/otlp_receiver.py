"""An OTLP/HTTP trace receiver on loopback, decoding what Cortex exports with the official
OpenTelemetry protobuf definitions (the opentelemetry-proto package).

POST /v1/traces takes an ExportTraceServiceRequest (application/x-protobuf, or JSON with
application/json); GET /spans lists every span received as JSON: trace_id, span_id and
parent_span_id in hex, name, kind, attributes, status code and the resource's service.name.
Prints "listening on PORT" once it serves.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

lock = threading.Lock()
spans = []
exports = {"count": 0, "content_types": []}


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with lock:
            body = json.dumps({"spans": spans, "exports": exports}).encode()
        self.answer(200, body, "application/json")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces":
            self.answer(404, b"", "text/plain")
            return
        content_type = self.headers.get("Content-Type", "")
        request = trace_service_pb2.ExportTraceServiceRequest()
        if content_type.startswith("application/json"):
            json_format.Parse(body, request)
        else:
            request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append({
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                        "attributes": {a.key: value(a.value) for a in span.attributes},
                        "status": trace_pb2.Status.StatusCode.Name(span.status.code),
                        "service": resource.get("service.name"),
                    })
        with lock:
            spans.extend(received)
            exports["count"] += 1
            exports["content_types"].append(content_type)
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.answer(200, reply, "application/x-protobuf")


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on {server.server_address[1]}", flush=True)
server.serve_forever()
