#!/usr/bin/env python3
"""Cold start of one Lambda binary: a minimal Lambda Runtime API on loopback hands the
binary one API Gateway v2 event and times process start -> first response.

usage: bench/lambda_cold_start.py BINARY FIXTURE [RUNS]
(the binary needs the local stack's environment: set -a; . .fanout/local.env; set +a)
"""
import http.server
import json
import os
import subprocess
import sys
import threading
import time

binary, fixture = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
event = open(fixture, "rb").read()
state = {}


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if state.get("served"):
            time.sleep(30)  # the binary is killed before this returns
            return
        state["served"] = True
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("Content-Length", str(len(event)))
        self.end_headers()
        self.wfile.write(event)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        state["response"] = json.loads(body or b"{}")
        state["done"] = time.perf_counter()
        self.send_response(202)
        self.end_headers()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
           AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
           AWS_LAMBDA_FUNCTION_VERSION="1", AWS_LAMBDA_LOG_GROUP_NAME="bench",
           AWS_LAMBDA_LOG_STREAM_NAME="bench", RUST_LOG="warn")
times = []
for _ in range(runs):
    state.clear()
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stderr=subprocess.DEVNULL)
    while "done" not in state and time.perf_counter() - start < 20:
        time.sleep(0.001)
    proc.kill()
    proc.wait()
    times.append((state["done"] - start) * 1000)
    status = state["response"].get("statusCode")
print(f"first response status {status}; ms per cold start over {runs} runs: "
      f"min {min(times):.1f}, median {sorted(times)[len(times) // 2]:.1f}, max {max(times):.1f}")
