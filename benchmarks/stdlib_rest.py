"""The embedded server with its REST API behind the standard library's `http.server` instead of our front end.

    python -m benchmarks.stdlib_rest --port=8500 --rest_api_port=8501 --model_name=m --model_base_path=/models/m

For `benchmarks/serving.py` only: the same flags, gRPC server and `RestApi`
(JSON in, JSON out) as `python -m serving`, with `ThreadingHTTPServer` (one
thread per connection, TCP_NODELAY) reading requests and writing answers, so
the cost of the HTTP layer reads off the rows beside the real server's. No
limits, timeouts or strict framing: not for serving anything.
"""

import http.server
import logging
import signal
import socket
import sys
import threading

from serving.main import options_from_args, parse_args
from serving.rest import RestApi
from serving.server import ModelServer


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rest_port = args.rest_api_port
    args.rest_api_port = 0  # the server's own REST front end stays off
    server = ModelServer(options_from_args(args)).start()
    api = RestApi(server.core)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _answer(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, payload = api.handle(self.command, self.path, body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    http_server = http.server.ThreadingHTTPServer(("127.0.0.1", rest_port), Handler)
    threading.Thread(target=http_server.serve_forever, daemon=True).start()
    logging.getLogger(__name__).info("Exporting HTTP/REST API at:localhost:%d (http.server front end)", rest_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    http_server.shutdown()
    server.stop(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
