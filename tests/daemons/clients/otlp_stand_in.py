"""A stand-in for Jaeger's OTLP/HTTP receiver (Debian ships no Jaeger or OpenTelemetry
collector): POST /v1/traces with a JSON body answers 200 with an empty partialSuccess, as the
collector does for an export it accepted; anything else is refused as the collector refuses it
(404 for another path, 415 for another content type, 400 for a body that is not JSON).

Usage: otlp_stand_in.py <port>
"""
import http.server
import json
import sys


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/traces":
            return self.answer(404, {"message": "unknown path"})
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self.answer(415, {"message": "unsupported content type"})
        try:
            json.loads(body or b"null")
        except ValueError:
            return self.answer(400, {"message": "body is not JSON"})
        self.answer(200, {"partialSuccess": {}})

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        sys.stderr.write("otlp %s\n" % (fmt % args))


http.server.ThreadingHTTPServer(("", int(sys.argv[1])), Receiver).serve_forever()
