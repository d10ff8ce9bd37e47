"""Shared fixtures."""

import http.server
import socket
import threading

import pytest


class _Route:
    def __init__(self, body, status=200, declared_length=None):
        self.body = body
        self.status = status
        self.declared_length = len(body) if declared_length is None else declared_length


class _Handler(http.server.BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        route = self.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        self.send_response(route.status)
        self.send_header("Content-Length", str(route.declared_length))
        self.end_headers()
        # A declared length longer than the body simulates a transfer cut short.
        self.wfile.write(route.body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A throw-away HTTP server on 127.0.0.1; ``serve(path, body, ...)`` adds a route.

    Yields an object with ``url(path)`` and ``serve(path, body, status=200,
    declared_length=None)``.
    """
    handler = type("Handler", (_Handler,), {"routes": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Server:
        @staticmethod
        def url(path):
            return f"http://127.0.0.1:{server.server_address[1]}{path}"

        @staticmethod
        def serve(path, body, status=200, declared_length=None):
            handler.routes[path] = _Route(body, status, declared_length)

    try:
        yield Server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port():
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
