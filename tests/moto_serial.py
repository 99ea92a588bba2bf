"""moto's S3 API answering one request at a time: its conditional writes are then as atomic as S3's.

moto checks a request's condition (``If-None-Match: *``, ``If-Match``) and then writes, in two
steps of the thread that serves the request; two racing requests can both pass the check. S3
decides each conditional write atomically, so the tests' server lets one request at a time
into moto (each connection still has its thread). In this process as a thread
(:class:`SerialMotoServer`, the ``s3_server`` fixture) or as a process of its own
(``python tests/moto_serial.py -H HOST -p PORT``, :class:`tests.cluster.S3Server`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server


def serial_app() -> Callable[[dict, Callable], Iterable[bytes]]:
    """moto's WSGI application behind one lock (the response is read whole under it)."""
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serve(environ: dict, start_response: Callable) -> Iterable[bytes]:
        with lock:
            return list(app(environ, start_response))

    return serve


class SerialMotoServer:
    """The serial S3 server on a thread of this process (``ThreadedMotoServer``'s interface)."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(
            ip_address, port, serial_app(), threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-serial", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)

    def leave(*_: Any) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, leave)
    server = make_server(args.host, args.port, serial_app(), threaded=True, request_handler=MotoRequestHandler)
    server.serve_forever()


if __name__ == "__main__":
    main()
