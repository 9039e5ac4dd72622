"""The relay: spool file -> ordered, acknowledged batches, over a stream or POSTs.

Every output line is appended to a spool file before it is sent, so a long server outage
costs neither memory nor lines; each batch carries a `seq` the server dedupes, so retries
are safe; the final status goes last, after every batch was acknowledged or given up on.
"""

import http.client
import json
import os
import random
import tempfile
import threading
import time
import urllib.parse
from typing import IO, Callable, Dict, List, Optional, Tuple

from .config import RETRY_INITIAL_S, Connection, Tuning
from .http import ENCODER, STREAM_PATH, Answer, HttpSession, LogStream, encode_body, retry_after_seconds
from .output import say

# A stream is ended (and its last stored seq read from the answer) after this long or this
# many records, or when no output came for STREAM_IDLE_S: the sidecar keeps every record sent
# on the open stream in memory until the server confirms it, to resend it after a drop.
STREAM_MAX_S = 30.0
# Each stream lasts a random part of the last half of STREAM_MAX_S (15-30 s): sidecars of jobs
# started together would otherwise all end their streams and open new ones in the same
# instant every 30 s, a thousand answers and connections at once (docs/performance.md,
# round 8).
STREAM_MAX_SPREAD = 0.5
STREAM_MAX_RECORDS = 2000
STREAM_IDLE_S = 5.0
BATCH_INTERVAL_CAP_S = 60.0
MIN_REQUEST_TIMEOUT_S = 0.5
LAST_WORD_S = 3.0  # after giving up on logs, how long the final status may still be tried

OK = "ok"
REJECTED = "rejected"  # 400 and other final answers: skip this message, go on
TOO_LARGE = "too_large"
HALTED = "halted"  # stop sending: 401, 409, given up, or out of time


class Batch:
    """Spooled records start..end: lines, then the agent's events (docs/agents.md)."""

    def __init__(
        self, seq: int, lines: List[str], start: int, end: int, events: Optional[List[Dict[str, object]]] = None
    ) -> None:
        self.seq = seq
        self.lines = lines
        self.start = start
        self.end = end
        self.events = events or []

    def body(self) -> Dict[str, object]:
        """The record as the wire has it; `events` only when there are some (old servers)."""
        body = {"seq": self.seq, "lines": self.lines}  # type: Dict[str, object]
        if self.events:
            body["events"] = self.events
        return body


# One encoder, made once: json.dumps with any option builds a new encoder per call, which
# was most of the CPU a busy agent's output cost the sidecar (bench/relay's profile).

def json_cost(text: str) -> int:
    """Bytes a line adds to a JSON body: the encoded string plus its separating comma."""
    return len(ENCODER.encode(text).encode("utf-8")) + 1



class Relay:
    """Delivers the status, the output lines and the artifacts to the server, in order.

    The producer (`add_line`, `finish`, `hurry`) never blocks on the network: lines go to the
    spool file and a background thread sends them. The sender sends, in this order: the
    `running` status, every log batch (seq 0, 1, ...), the artifacts, the final status. Each
    is acknowledged before the next is sent, so the server sees the final status last.
    """

    def __init__(
        self,
        connection: Connection,
        tuning: Tuning,
        spool_path: str,
        clock: Callable[[], float] = time.monotonic,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        self._job_id = connection.job_id
        self._tuning = tuning
        self._http = HttpSession(connection)
        self._clock = clock
        self._random = random_fraction
        self._cond = threading.Condition()
        self._writer, spool_path = self._open_spool(spool_path)
        self._reader = open(spool_path, "rb")
        self._written = 0  # bytes of whole records in the spool
        self._read = 0  # start of the first unacknowledged record
        self._closed = False
        self._tail = []  # type: List[Tuple[str, Dict[str, object], str]]
        self._first = None  # type: Optional[Dict[str, object]]
        self._deadline = None  # type: Optional[float]
        self._deadline_version = 0
        self._done = False
        self._stopped = False  # the server told us to stop (401, 409)
        self._gave_up = False
        self._out_of_time = False
        self._failing_since = None  # type: Optional[float]
        self._interval_s = 0.0
        self._last_batch_at = float("-inf")
        self._seq = 0
        self._batch_bytes = tuning.batch_bytes
        self._wake_at_written = None  # type: Optional[int]
        self._streaming = tuning.stream  # False once the server said it has no stream endpoint
        self._unconfirmed = []  # type: List[Batch]  # sent on a stream, not yet known stored
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    @staticmethod
    def _open_spool(path: str) -> Tuple[IO[bytes], str]:
        """The spool holds every line before redaction on the server: this user's eyes only."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
            return os.fdopen(fd, "wb"), path
        except OSError as exc:
            fd, fallback = tempfile.mkstemp(prefix="opendispatch-spool-", suffix=".jsonl")
            say(f"cannot write the spool file {path} ({exc.strerror}); using {fallback}")
            return os.fdopen(fd, "wb"), fallback

    # ---- producer side (main and pump threads) ----

    def start(self, first_status: Optional[Dict[str, object]]) -> None:
        self._first = first_status
        self._thread.start()

    def add_line(self, text: str) -> None:
        self._spool(encode_body({"t": round(self._clock(), 4), "line": text}) + b"\n")

    def add_event(self, event: Dict[str, object]) -> None:
        """One agent event (already redacted); it travels after the lines spooled before it."""
        self._spool(encode_body({"t": round(self._clock(), 4), "event": event}) + b"\n")

    def _spool(self, data: bytes) -> None:
        with self._cond:
            if self._closed:
                return
            # No flush here: the sender flushes before it reads (`_collect_batch`). A write
            # call per line released the GIL and woke a thread per line for nothing; the
            # echo to stdout is what keeps every line should this process die.
            self._writer.write(data)
            self._written += len(data)
            # While a batch gathers, the relay thread sleeps until its send time: waking it
            # for every line would cost a thread switch per line for nothing.
            if self._wake_at_written is None or self._written >= self._wake_at_written:
                self._cond.notify_all()

    def finish(
        self,
        artifacts: List[Dict[str, object]],
        final_status: Dict[str, object],
        transcript: Optional[List[List[str]]] = None,
        files: Optional[List[Dict[str, object]]] = None,
    ) -> None:
        """No more lines: send what is spooled, the transcript's parts, the artifact files, the
        artifacts, then the final status."""
        with self._cond:
            if self._closed:
                return
            for number, part in enumerate(transcript or []):
                body = {"jobId": self._job_id, "part": number, "lines": part}  # type: Dict[str, object]
                self._tail.append(("/webhooks/transcript", body, f"transcript part {number}"))
            for file in files or []:
                body = {"jobId": self._job_id, **file}
                self._tail.append(("/webhooks/artifact-file", body, f"artifact file {file.get('name')!r}"))
            if artifacts:
                body = {"jobId": self._job_id, "artifacts": artifacts}
                self._tail.append(("/webhooks/artifacts", body, "artifacts"))
            self._tail.append(("/webhooks/status", final_status, f"{final_status.get('status')} status"))
            self._closed = True
            self._cond.notify_all()

    def hurry(self, budget_s: float) -> None:
        """We are being stopped: whatever is not sent within `budget_s` is not sent."""
        with self._cond:
            deadline = self._clock() + budget_s
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline
                self._deadline_version += 1
                self._cond.notify_all()

    def wait_done(self, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._done, timeout_s)

    # ---- sender thread ----

    def _run(self) -> None:
        try:
            first = self._first
            if first is not None:
                self._post("/webhooks/status", first, f"{first.get('status')} status")
            if self._streaming:
                self._stream_all()
            while not self._halted():
                batch = self._collect_batch()
                if batch is None:
                    break
                self._deliver(batch)
            self._send_tail()
        except Exception as exc:  # a bug here must never hang or crash the job
            say(f"the relay stopped after an internal error: {type(exc).__name__}: {exc}")
        finally:
            self._http.close()
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _halted(self) -> bool:
        return self._stopped or self._gave_up or self._out_of_time

    def _send_tail(self) -> None:
        with self._cond:
            while not self._closed:
                self._cond.wait()
            tail = list(self._tail)
        if self._stopped:
            return
        if self._gave_up or self._out_of_time:
            # The lines are lost to the server, but how the job ended still matters to it.
            with self._cond:
                self._gave_up = self._out_of_time = False
                self._failing_since = None
                self._deadline = self._clock() + min(LAST_WORD_S, self._tuning.give_up_s)
                self._deadline_version += 1
        for path, payload, what in tail:
            if self._post(path, payload, what) == HALTED:
                return

    def _collect_batch(self, idle_s: Optional[float] = None) -> Optional[Batch]:
        """The next batch: up to the byte cap, or what arrived within batch_s of its first line.

        None when nothing more will come (or we must stop), or nothing came for `idle_s`.
        """
        idle_until = None if idle_s is None else self._clock() + idle_s
        with self._cond:
            while self._read == self._written and not self._closed and not self._halted():
                wait = self._until_deadline()
                if idle_until is not None:
                    left = idle_until - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                # The server asked for one batch per interval at most: until the next may go,
                # a first line need not wake us (a full batch, the end or a deadline still do).
                quiet_left = self.next_batch_not_before() - self._clock()
                if self._deadline is None and quiet_left > 0:
                    wait = quiet_left if wait is None else min(wait, quiet_left)
                    self._wake_at_written = self._written + self._batch_bytes
                try:
                    self._cond.wait(wait)
                finally:
                    self._wake_at_written = None
                self._check_deadline()
            if self._halted() or self._read == self._written:
                return None
        lines = []  # type: List[str]
        events = []  # type: List[Dict[str, object]]
        size = 2
        end = self._read
        first_at = None  # type: Optional[float]
        full = False
        while True:
            with self._cond:
                available, closed = self._written, self._closed
                if end < available:
                    self._writer.flush()  # what add_line buffered, so the reader sees it
            while end < available and not full:
                self._reader.seek(end)
                raw = self._reader.readline()
                record = json.loads(raw.decode("utf-8"))
                event = record.get("event")
                text = record.get("line")
                cost = json_cost(text) if event is None else len(encode_body(event)) + 1
                if (lines or events) and size + cost > self._batch_bytes:
                    full = True
                    break
                if event is not None:
                    events.append(event)
                elif events:
                    # A record carries its lines before its events: a line after an event
                    # starts the next record, so the server sees them in the order they came.
                    full = True
                    break
                else:
                    lines.append(text)
                size += cost
                end += len(raw)
                if first_at is None:
                    first_at = float(record["t"])
            if full or size >= self._batch_bytes:
                break
            now = self._clock()
            if closed or self._deadline is not None or first_at is None:
                send_at = now  # nothing more is coming, or no time to wait for it
            else:
                send_at = first_at + self._tuning.batch_s
            if self._deadline is None:
                send_at = max(send_at, self.next_batch_not_before())
            if now >= send_at:
                break
            with self._cond:
                if self._written == available and self._closed == closed:
                    # Woken early only if what is spooled may fill the batch (spooled bytes
                    # over-count a line's cost, so this never wakes too late).
                    self._wake_at_written = available + max(1, self._batch_bytes - size)
                    try:
                        self._cond.wait(send_at - now)
                    finally:
                        self._wake_at_written = None
        return Batch(self._seq, lines, self._read, end, events)

    def _deliver(self, batch: Batch) -> None:
        payload = {"jobId": self._job_id}  # type: Dict[str, object]
        payload.update(batch.body())
        outcome = self._post("/webhooks/logs", payload, f"log batch {batch.seq}")
        if outcome == TOO_LARGE and len(batch.lines) + len(batch.events) > 1:
            # Not stored under this seq: re-batch the same lines, smaller, under the same seq.
            self._batch_bytes = max(1024, self._batch_bytes // 2)
            return
        if outcome == TOO_LARGE:
            say(f"the server refused log batch {batch.seq} (one line) as too large; skipping it")
        if outcome in (OK, REJECTED, TOO_LARGE):
            self._seq += 1
            self._read = batch.end
            self._last_batch_at = self._clock()

    # ---- streaming: one long-lived request instead of a POST per batch ----

    def _stream_all(self) -> None:
        """Send every log batch over `/webhooks/stream` until all are stored and no more come.

        Each stream ends after a while (or when output pauses) and its answer confirms what was
        stored. After a drop we ask the server for its last stored seq and resend, unchanged, the
        batches after it. Returns early, leaving the rest to POSTs, if the server has no stream.
        """
        resume_point_known = False
        delay = RETRY_INITIAL_S
        while not self._halted():
            if not resume_point_known:
                outcome = self._ask_resume_point()
                if outcome == "absent":
                    self._fall_back_to_posts()
                    return
                if outcome != OK:
                    return  # halted
                resume_point_known = True
            with self._cond:
                finished = self._closed and self._read == self._written
            if finished and not self._unconfirmed:
                return
            outcome, wait = self._one_stream()
            if outcome == OK:
                delay = RETRY_INITIAL_S
                continue
            if outcome == "absent":
                self._fall_back_to_posts()
                return
            if outcome == HALTED:
                return
            resume_point_known = False  # the stream broke: ask where to resume
            next_delay = self._after_failure(delay, wait)
            if next_delay is None:
                return
            delay = next_delay

    def _one_stream(self) -> Tuple[str, Optional[float]]:
        """Open a stream, resend what is unconfirmed, send new batches, end it and read the answer."""
        if self._check_deadline():
            return HALTED, None
        timeout = self._request_timeout()
        try:
            stream = LogStream(self._http_target, timeout)
        except (OSError, http.client.HTTPException):
            return "broken", None
        ends_at = self._clock() + self.stream_lifetime()
        try:
            try:
                for unconfirmed in self._unconfirmed:
                    stream.send(self._record(unconfirmed), self._request_timeout())
                while len(self._unconfirmed) < STREAM_MAX_RECORDS and self._clock() < ends_at:
                    if self._halted():
                        return HALTED, None
                    batch = self._collect_batch(idle_s=STREAM_IDLE_S)
                    if batch is None:
                        break
                    stream.send(self._record(batch), self._request_timeout())
                    self._unconfirmed.append(batch)
                    self._seq += 1
                    self._read = batch.end
                    self._last_batch_at = self._clock()
            except (OSError, http.client.HTTPException):
                pass  # the server may have answered early: read its answer below
            if self._out_of_time:
                return HALTED, None
            answer = stream.finish(self._request_timeout())
        except (OSError, http.client.HTTPException):
            return "broken", None
        finally:
            stream.close()
        return self._stream_answer(answer)

    def stream_lifetime(self) -> float:
        """How long the next stream may stay open: a random point of STREAM_MAX_S's last half."""
        return STREAM_MAX_S * (1.0 - STREAM_MAX_SPREAD * self._random())

    def _stream_answer(self, answer: Answer) -> Tuple[str, Optional[float]]:
        status = answer.status
        data = answer.json()
        if status in (200, 413) and "lastSeq" in data:
            self._failing_since = None
            self._confirm(data.get("lastSeq"))
            self.note_interval(data)
            if status == 200 and data.get("rejected") and self._unconfirmed:
                say(f"the server rejected {data.get('rejected')} log record(s): {self._server_message(answer)}")
                self._unconfirmed = []
            # A 413 (a record over the server's limit): POSTs know how to split batches.
            return (OK, None) if status == 200 else ("absent", None)
        if status == 404:
            return "absent", None
        if status in (401, 409):
            self._refused(status)
            return HALTED, None
        return "broken", retry_after_seconds(answer.retry_after, time.time())

    def _ask_resume_point(self) -> str:
        """GET the last stored seq (retrying); "absent" when the server has no stream endpoint."""
        delay = RETRY_INITIAL_S
        while True:
            if self._stopped or self._check_deadline():
                return HALTED
            wait = None  # type: Optional[float]
            query = urllib.parse.urlencode({"jobId": self._job_id})
            try:
                answer = self._http.post(f"{STREAM_PATH}?{query}", b"", self._request_timeout(), method="GET")
            except (OSError, http.client.HTTPException):
                answer = None
            if answer is not None:
                if answer.status == 200:
                    self._failing_since = None
                    data = answer.json()
                    self._confirm(data.get("lastSeq"))
                    self.note_interval(data)  # how long to gather records on the next stream
                    return OK
                if answer.status in (404, 405):
                    return "absent"
                if answer.status in (401, 409):
                    self._refused(answer.status)
                    return HALTED
                wait = retry_after_seconds(answer.retry_after, time.time())
            next_delay = self._after_failure(delay, wait)
            if next_delay is None:
                return HALTED
            delay = next_delay

    def _confirm(self, last_seq: object) -> None:
        """Batches up to the server's last stored seq need no resending."""
        if isinstance(last_seq, int) and not isinstance(last_seq, bool):
            self._unconfirmed = [batch for batch in self._unconfirmed if batch.seq > last_seq]

    def _fall_back_to_posts(self) -> None:
        """The server has no stream: anything sent on one goes again as POSTs, same seqs."""
        self._streaming = False
        if self._unconfirmed:
            self._read = self._unconfirmed[0].start
            self._seq = self._unconfirmed[0].seq
            self._unconfirmed = []

    def _record(self, batch: Batch) -> bytes:
        return encode_body(batch.body()) + b"\n"

    @property
    def _http_target(self) -> Connection:
        return self._http._target

    def _request_timeout(self) -> float:
        timeout = self._tuning.http_timeout_s
        if self._deadline is not None:
            timeout = max(MIN_REQUEST_TIMEOUT_S, min(timeout, self._deadline - self._clock()))
        return timeout

    def _refused(self, status: int) -> None:
        if status == 401:
            say(
                "the server rejected the job token (401); not sending any more; "
                "the full output is in this machine's log (fly logs)"
            )
        else:
            say(f"the server says job {self._job_id} is already finished (409); not sending any more")
        self._stopped = True

    def _after_failure(self, delay: float, wait: Optional[float]) -> Optional[float]:
        """Note a failed attempt and pause before the next; the next backoff, or None: give up."""
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= self._tuning.give_up_s:
            self._give_up()
            return None
        if wait is None:
            wait = random.uniform(delay / 2.0, delay)
            delay = min(delay * 2.0, self._tuning.retry_max_s)
        remaining = self._failing_since + self._tuning.give_up_s - now
        self._pause(min(wait, max(remaining, 0.0)))
        return delay

    def _post(self, path: str, payload: Dict[str, object], what: str) -> str:
        """POST until acknowledged, retrying what may succeed later; returns an outcome."""
        body = encode_body(payload)
        delay = RETRY_INITIAL_S
        while True:
            if self._stopped or self._check_deadline():
                return HALTED
            timeout = self._tuning.http_timeout_s
            if self._deadline is not None:
                timeout = max(MIN_REQUEST_TIMEOUT_S, min(timeout, self._deadline - self._clock()))
            wait = None  # type: Optional[float]
            try:
                answer = self._http.post(path, body, timeout)
            except (OSError, http.client.HTTPException):
                answer = None
            if answer is not None:
                status = answer.status
                if 200 <= status < 300:
                    self._failing_since = None
                    self.note_interval(answer.json())
                    return OK
                if status == 401:
                    say(
                        "the server rejected the job token (401); not sending any more; "
                        "the full output is in this machine's log (fly logs)"
                    )
                    self._stopped = True
                    return HALTED
                if status == 409:
                    say(f"the server says job {self._job_id} is already finished (409); not sending any more")
                    self._stopped = True
                    return HALTED
                if status == 413:
                    self._failing_since = None  # it answered: the server is reachable
                    return TOO_LARGE
                if status not in (408, 425, 429) and status < 500:
                    self._failing_since = None
                    say(f"the server rejected the {what} ({status}): {self._server_message(answer)}")
                    return REJECTED
                wait = retry_after_seconds(answer.retry_after, time.time())
            now = self._clock()
            if self._failing_since is None:
                self._failing_since = now
            if now - self._failing_since >= self._tuning.give_up_s:
                self._give_up()
                return HALTED
            if wait is None:
                wait = random.uniform(delay / 2.0, delay)
                delay = min(delay * 2.0, self._tuning.retry_max_s)
            remaining = self._failing_since + self._tuning.give_up_s - now
            self._pause(min(wait, max(remaining, 0.0)))

    def _give_up(self) -> None:
        self._gave_up = True
        self._http.close()
        say(
            f"server unreachable for {self._tuning.give_up_s:g}s; no more output is sent to it; "
            "the full output is in this machine's log (fly logs)"
        )

    def _check_deadline(self) -> bool:
        if self._deadline is not None and self._clock() >= self._deadline and not self._out_of_time:
            self._out_of_time = True
        return self._out_of_time

    def _until_deadline(self) -> Optional[float]:
        if self._deadline is None:
            return None
        return max(self._deadline - self._clock(), 0.0)

    def _pause(self, seconds: float) -> None:
        """Sleep between retries; a new (earlier) deadline ends the pause at once."""
        wake_at = self._clock() + seconds
        with self._cond:
            version = self._deadline_version
            while self._deadline_version == version:
                if self._deadline is not None:
                    wake_at = min(wake_at, self._deadline)
                remaining = wake_at - self._clock()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def note_interval(self, answer: Dict[str, object]) -> None:
        """The server may slow us down: `batchIntervalMs` holds until an answer says otherwise.

        When the server first slows us down, our next batch may go at a random point of the
        interval rather than at once: sidecars that started together (a burst of jobs) would
        otherwise all send in the same slice of every interval, and the server would get
        their batches in bursts instead of evenly (docs/performance.md, round 5).
        """
        value = answer.get("batchIntervalMs")
        previous = self._interval_s
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            self._interval_s = min(float(value) / 1000.0, BATCH_INTERVAL_CAP_S)
        else:
            self._interval_s = 0.0
        if previous == 0.0 and self._interval_s > 0.0:
            spread_from = self._clock() - self._interval_s * self._random()
            self._last_batch_at = max(self._last_batch_at, spread_from)

    def next_batch_not_before(self) -> float:
        """The earliest clock time the next batch may go, as the server's interval allows."""
        return self._last_batch_at + self._interval_s

    @staticmethod
    def _server_message(answer: Answer) -> str:
        data = answer.json()
        message = data.get("error") or data.get("message") or answer.body.decode("utf-8", "replace")
        details = data.get("details")
        text = str(message) if details is None else f"{message} {details}"
        return " ".join(text.split())[:500] or "(no message)"
