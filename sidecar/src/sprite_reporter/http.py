"""Talking to the webhook server: one keep-alive connection, a chunked log stream, one-off calls.

Standard library `http.client` only; the token goes in a header, never in a URL or a log line.
"""

import http.client
import json
import ssl
import urllib.parse
from email.utils import parsedate_to_datetime
from typing import Dict, Optional, Tuple

from .config import Connection

USER_AGENT = "opendispatch-sprite-reporter/1"
STREAM_PATH = "/webhooks/stream"
RETRY_AFTER_CAP_S = 60.0  # a server asking for more than this is treated as asking for this


# One encoder, made once: json.dumps with any option builds a new encoder per call, which
# was most of the CPU a busy agent's output cost the sidecar (bench/relay's profile).
ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_body(payload: Dict[str, object]) -> bytes:
    return ENCODER.encode(payload).encode("utf-8")


class Answer:
    def __init__(self, status: int, retry_after: Optional[str], body: bytes) -> None:
        self.status = status
        self.retry_after = retry_after
        self.body = body

    def json(self) -> Dict[str, object]:
        try:
            value = json.loads(self.body.decode("utf-8", "replace"))
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


class HttpSession:
    """One keep-alive connection to the server, rebuilt whenever it breaks.

    Only the relay thread uses it, so it needs no lock.
    """

    def __init__(self, connection: Connection) -> None:
        self._target = connection
        self._conn = None  # type: Optional[http.client.HTTPConnection]
        self._headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {connection.token}",
            "User-Agent": USER_AGENT,
        }

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def post(self, path: str, body: bytes, timeout_s: float, method: str = "POST") -> Answer:
        """POST once; a reused connection that turns out stale gets one immediate fresh retry."""
        reused = self._conn is not None
        try:
            return self._post_once(path, body, timeout_s, method)
        except (OSError, http.client.HTTPException):
            self.close()
            if not reused:
                raise
        return self._post_once(path, body, timeout_s, method)

    def _post_once(self, path: str, body: bytes, timeout_s: float, method: str) -> Answer:
        target = self._target
        if self._conn is None:
            self._conn = open_http(target, timeout_s)
        conn = self._conn
        conn.timeout = timeout_s
        if conn.sock is not None:
            conn.sock.settimeout(timeout_s)
        try:
            conn.request(method, target.prefix + path, body=body if method == "POST" else None, headers=self._headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return Answer(response.status, response.getheader("Retry-After"), data)


def open_http(target: Connection, timeout_s: float) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout_s, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)


class LogStream:
    """One `POST /webhooks/stream` with a chunked NDJSON body, written record by record.

    The server answers only when the body ends (`finish`), or early on an error; the answer
    carries `lastSeq`, the highest seq it has stored.
    """

    def __init__(self, target: Connection, timeout_s: float) -> None:
        self._conn = open_http(target, timeout_s)
        query = urllib.parse.urlencode({"jobId": target.job_id})
        try:
            self._conn.putrequest("POST", f"{target.prefix}{STREAM_PATH}?{query}", skip_accept_encoding=True)
            self._conn.putheader("Authorization", f"Bearer {target.token}")
            self._conn.putheader("Content-Type", "application/x-ndjson")
            self._conn.putheader("Transfer-Encoding", "chunked")
            self._conn.putheader("User-Agent", USER_AGENT)
            self._conn.endheaders()
        except BaseException:
            self.close()
            raise

    def send(self, record: bytes, timeout_s: float) -> None:
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout_s)
        self._conn.send(b"%x\r\n%s\r\n" % (len(record), record))

    def finish(self, timeout_s: float) -> Answer:
        """End the body (if it can still be sent) and read the server's answer."""
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout_s)
        try:
            self._conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # the server may have answered early and closed; its answer may still be readable
        try:
            response = self._conn.getresponse()
            return Answer(response.status, response.getheader("Retry-After"), response.read())
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._conn.close()
        except OSError:
            pass


def retry_after_seconds(value: Optional[str], now_wall: float) -> Optional[float]:
    """Retry-After as seconds (delta-seconds or an HTTP date), capped; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now_wall
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def http_json(
    target: Connection, method: str, path: str, timeout_s: float, body: Optional[Dict[str, object]] = None
) -> Tuple[int, Dict[str, object]]:
    """One request on a fresh connection (long-polls outlive keep-alives and suspended machines)."""
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(
            target.host, target.port, timeout=timeout_s, context=ssl.create_default_context()
        )  # type: http.client.HTTPConnection
    else:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout_s)
    headers = {"Authorization": f"Bearer {target.token}", "User-Agent": USER_AGENT}
    data = None
    if body is not None:
        data = encode_body(body)
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, target.prefix + path, body=data, headers=headers)
        response = conn.getresponse()
        answer = Answer(response.status, None, response.read())
    finally:
        conn.close()
    return answer.status, answer.json()
