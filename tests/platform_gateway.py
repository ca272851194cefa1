"""A tiny HTTPS gateway for the client's tests: each request gets the next scripted answer.

The sandbox is the platform as it should behave; this server also behaves badly on demand (a reply signed
with another key, a wrong echo, garbage, too large, 5xx, 429, a hang, a dropped connection), which the sandbox
never does.  Its TLS certificate chains to a throwaway CA made here with ``cryptography``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from enrollment.config import PlatformConfig
from enrollment.gateway import REQUEST_NUMBER, Code, Method, Signer, encode_response, response_key, rsa_signer

Answer = Callable[["Handler", dict[str, str]], None]


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def throwaway_ca(directory: Path) -> tuple[str, Path, Path]:
    """A CA (its PEM) and a leaf certificate and key for 127.0.0.1 (their files), for the server's TLS."""
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("naiad test CA", ca_key, None, ca_key)
    leaf = _certificate("127.0.0.1", leaf_key, ca, ca_key)
    cert_file, key_file = directory / "leaf.pem", directory / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        params = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        answer = self.server.next_answer(params)
        answer(self, params)

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            **(headers or {}),
        }.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, gateway: Gateway) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.gateway = gateway

    def next_answer(self, params: dict[str, str]) -> Answer:
        with self.gateway.lock:
            self.gateway.requests.append(params)
            return self.gateway.script.pop(0) if self.gateway.script else self.gateway.default


@dataclass
class Gateway:
    """The server's script: ``script`` answers requests in order, then ``default`` answers the rest."""

    platform_key: rsa.RSAPrivateKey
    ca_certificate: str
    url: str = ""
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default=lambda handler, params: success()(handler, params))
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def signer(self) -> Signer:
        return rsa_signer(self.platform_key)

    def config(self, **changes: Any) -> PlatformConfig:
        values: dict[str, Any] = {
            "url": self.url,
            "app_id": "2026000000000001",
            "key_label": "platform-2026000000000001",
            "supplier_id": "2088000000000100",
            "platform_public_key": public_pem(self.platform_key),
            "ca_certificate": self.ca_certificate,
            "timeout_seconds": 5.0,
        }
        return PlatformConfig(**{**values, **changes})

    def reset(self) -> None:
        with self.lock:
            self.script.clear()
            self.requests.clear()
            self.default = lambda handler, params: success()(handler, params)
            self.release.set()
            self.release = threading.Event()


@contextmanager
def serving(directory: Path) -> Iterator[Gateway]:
    ca, cert_file, key_file = throwaway_ca(directory)
    gateway = Gateway(rsa_key(), ca)
    server = Server(gateway)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    gateway.url = f"https://127.0.0.1:{server.server_address[1]}/gateway"
    thread = threading.Thread(target=server.serve_forever, name="test-gateway", daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        gateway.release.set()
        server.shutdown()
        server.server_close()


def echo(biz: dict[str, Any]) -> dict[str, Any]:
    """What a well-behaved platform answers to a bind: the request's numbers, serial, merchant and store."""
    keys = ("out_request_no", "serial", "merchant_id", "store_id")
    return {**{k: biz[k] for k in keys if k in biz}, "bound": "2026-11-30 16:00:00"}


def success(
    fields: Callable[[dict[str, Any]], dict[str, Any]] = echo,
    signer: Signer | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """A signed success reply; records the request's ``Cookie`` header in ``params["cookie"]``."""

    def answer(handler: Handler, params: dict[str, str]) -> None:
        params["cookie"] = handler.headers.get("Cookie", "")
        biz = json.loads(params["biz_content"])
        response = {"code": Code.SUCCESS.value, "msg": "Success", **fields(biz)}
        sign = signer or handler.server.gateway.signer
        handler.send(200, encode_response(response_key(params["method"]), response, sign), headers)

    return answer


def refusal(
    code: str, sub_code: str, sub_msg: str, signer: Signer | None = None, echo: dict[str, str] | None = None
) -> Answer:
    """A signed error reply echoing the request's number as the platform does, or the fields of ``echo``
    instead (``{}``: none)."""

    def answer(handler: Handler, params: dict[str, str]) -> None:
        if echo is None:
            field = REQUEST_NUMBER.get(Method(params["method"]))
            biz = json.loads(params["biz_content"])
            echoed = {} if field is None or field not in biz else {field: biz[field]}
        else:
            echoed = echo
        response = {"code": code, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg, **echoed}
        sign = signer or handler.server.gateway.signer
        handler.send(200, encode_response(response_key(params["method"]), response, sign))

    return answer


def status(code: int, headers: dict[str, str] | None = None) -> Answer:
    return lambda handler, params: handler.send(code, b'{"busy":true}', headers)


def raw(body: bytes, headers: dict[str, str] | None = None) -> Answer:
    return lambda handler, params: handler.send(200, body, headers)


def hang(handler: Handler, params: dict[str, str]) -> None:
    """Never answer (until the test ends)."""
    handler.server.gateway.release.wait(10)
    handler.close_connection = True


def drop(handler: Handler, params: dict[str, str]) -> None:
    """Close the connection with no reply: the work done, the answer lost."""
    handler.close_connection = True


def flood(handler: Handler, params: dict[str, str]) -> None:
    """An endless chunked reply; records how many bytes the client let through before it hung up."""
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"x" * 65536
    sent = 0
    try:
        while sent < 64 << 20:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except OSError:
        pass
    handler.server.gateway.requests[-1]["flooded"] = str(sent)
    handler.close_connection = True


def trickle(handler: Handler, params: dict[str, str]) -> None:
    """Headers at once, then one byte at a time, never reaching the length announced."""
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    try:
        while not handler.server.gateway.release.wait(0.02):
            handler.wfile.write(b" ")
            handler.wfile.flush()
    except OSError:
        pass
    handler.close_connection = True


def slow_headers(handler: Handler, params: dict[str, str]) -> None:
    """A status line, then a header one byte at a time, each byte well within any read timeout, for up to 10 s;
    records in ``params`` whether the client hung up first."""
    try:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(200):
            if handler.server.gateway.release.wait(0.05):
                break
            handler.wfile.write(b"a")
            handler.wfile.flush()
    except OSError:
        params["hung_up"] = "yes"
    handler.close_connection = True
