"""The base of the protocol-faithful HTTPS test servers (Graph, Webex, AXL): a threaded HTTP server on a loopback
port the kernel picks, speaking TLS with the test CA's certificate. Each server adds its state and its handler."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class TlsServer(ThreadingHTTPServer):
    """``Server(…, certfile, keyfile).start()`` … ``.stop()``; ``base_url`` and ``port`` say where it listens."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], certfile: str, keyfile: str):
        super().__init__(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        self.base_url = f"https://127.0.0.1:{self.port}"

    def start(self) -> Self:
        # a short poll: stop() (shutdown) waits for the serving loop to notice, up to one interval
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
