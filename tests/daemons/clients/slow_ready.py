"""A stand-in for many services' readiness endpoints: answers every GET with 200 after DELAY
seconds, and logs `inflight <n>` as each request starts, so a test sees how many checks it was
asked in parallel.

Usage: slow_ready.py <port> <delay seconds>
"""
import http.server
import sys
import threading
import time

port, delay = int(sys.argv[1]), float(sys.argv[2])
lock = threading.Lock()
inflight = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global inflight
        with lock:
            inflight += 1
            print("inflight %d" % inflight, flush=True)
        time.sleep(delay)
        with lock:
            inflight -= 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
