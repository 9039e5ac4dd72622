"""A job's live output in a personal (one-to-one) chat, as a Teams stream.

Teams streams a bot's message in one-to-one chats only, one stream per chat at a time
(learn.microsoft.com, "Stream bot messages"). A stream is a series of POSTs to the
conversation's activities, strictly one after another, each after the previous one's answer
and at most one a second:

1. informative updates: `{"type": "typing", "text": STATUS, "entities": [{"type": "streaminfo",
   "streamType": "informative", "streamSequence": N}]}`; the first answer (`201 {"id": …}`) is
   the stream's id, which every later request names as `streamId`;
2. streaming updates: `"type": "typing"`, `"streamType": "streaming"`, the whole text so far
   (each text starts with the one before it);
3. the final message: `"type": "message"`, `"streamType": "final"`, no `streamSequence`, with
   any field a message may have (the job's card as its attachment).

`streamSequence` starts at 1 and goes up by one with every informative or streaming update.
Each request also carries the same fields as `channelData` (`streamType`, `streamSequence`,
`streamId`), as Microsoft's Teams AI library does for older clients.

`LiveStream` is one job's stream. The adapter hands it every version of every live page
(`show`) and, at the end, the job's card (`finish`); its task decides what to send:

- the first request is an informative update with what the job does now
  (`render.activity_status`); more follow while the job has printed no output;
- once there is output, streaming updates carry all of it so far, as an open code block;
- the card ends the stream as the final message's attachment, under the streamed text.

When Teams' own Stop was pressed, the next request fails with 403 `ContentStreamNotAllowed`,
"Content stream was cancelled by user": the job is cancelled as our Stop button would
(`on_stop`: `/od-cancel JOB` in the name of the chat's user). A stream ends within two
minutes of its start, and one message holds ~100 KB: before either limit, or when the output
can no longer grow by appending (a page that rolls), the stream ends with its text so far
and the output goes on in Adaptive Cards edited in place, as in a channel. Any other refusal
(expired, too large, not allowed) falls back to those cards from the first page, so no line
is lost, and the card still comes. See docs/teams.md for what is documented and what is not.
"""

from __future__ import annotations

import enum
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio

from ...domain.agent_progress import ProgressView
from ...domain.job import Conversation, Job
from ...domain.messages import JobCard, LiveOutput, MessageRef
from ...domain.output_buffer import FENCE, is_fence_line
from ...domain.render import activity_status
from .cards import final_activity, live_activity
from .connector import ConnectorError, Target
from .outbox import Outbox, OutboxClosed, StreamAnswer
from .settings import TeamsSettings

log = logging.getLogger(__name__)

STREAM_INFO = "streaminfo"
INFORMATIVE = "informative"
STREAMING = "streaming"
FINAL = "final"
CONTENT_STREAM_NOT_ALLOWED = "ContentStreamNotAllowed"
#: Teams takes informative text up to 1 KB or 1,000 characters.
INFORMATIVE_CHARS = 1000
#: A live page's `MessageRef.id` while it is part of a stream (never a Teams activity id).
STREAM_REF_PREFIX = "od-stream:"
HANDED_OVER = "The live output goes on in the card below."

Activity = dict[str, Any]


# --- the protocol's shapes --------------------------------------------------------------------


def stream_entity(stream_type: str, *, stream_id: str | None, sequence: int | None) -> dict[str, Any]:
    """`{"type": "streaminfo", "streamType": …}` with `streamId` once known and
    `streamSequence` for informative and streaming updates (never for the final message)."""
    entity: dict[str, Any] = {"type": STREAM_INFO, "streamType": stream_type}
    if stream_id is not None:
        entity["streamId"] = stream_id
    if sequence is not None:
        entity["streamSequence"] = sequence
    return entity


def typing_activity(stream_type: str, text: str, *, sequence: int, stream_id: str | None) -> Activity:
    """An informative or streaming update."""
    entity = stream_entity(stream_type, stream_id=stream_id, sequence=sequence)
    return {"type": "typing", "text": text, "entities": [entity], "channelData": _channel_data(entity)}


def final_stream_activity(text: str, *, stream_id: str, card: Activity | None = None) -> Activity:
    """The stream's final message: its text, and the card (`final_activity`) when given."""
    entity = stream_entity(FINAL, stream_id=stream_id, sequence=None)
    activity: Activity = {
        "type": "message",
        "text": text,
        "textFormat": "markdown",
        "entities": [entity],
        "channelData": _channel_data(entity),
    }
    if card is not None:
        activity["summary"] = card.get("summary", "")
        activity["attachments"] = card["attachments"]
    return activity


def _channel_data(entity: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entity.items() if key != "type"}


def output_text(pages: Mapping[int, LiveOutput]) -> tuple[str, int]:
    """What a stream shows of the pages: all their lines in order, as a code block left open
    (a later text must start with this one, so the closing fence comes only at the end), and
    how many leading pages are complete in it (sealed: they will not change)."""
    lines: list[str] = []
    settled = 0
    for index in sorted(pages):
        page = pages[index]
        lines.extend(line.replace(FENCE, "`\u200b``") if is_fence_line(line) else line for line in page.lines)
        if page.sealed and index == settled:
            settled += 1
    if not lines:
        return "", settled
    return "\n".join([FENCE, *lines]), settled


def closed(text: str) -> str:
    return f"{text}\n{FENCE}" if text else ""


def utf16_bytes(activity: Activity) -> int:
    return len(json.dumps(activity, ensure_ascii=False).encode("utf-16-le"))


class StreamEnd(enum.Enum):
    """Why Teams refused a streaming request, and so what we do."""

    #: The user pressed Teams' Stop: the job is cancelled, as with our Stop button.
    STOPPED = "stopped by the user"
    #: Streaming is not available to this bot or user: cards, now and for later jobs of this chat.
    REFUSED = "not allowed here"
    #: Expired, too large, or anything else: this job's output goes on in cards.
    BROKEN = "broken"


def classify(error: ConnectorError) -> StreamEnd:
    """The error code alone does not tell: Teams answers 403 `ContentStreamNotAllowed` for a
    press on Stop, a stream past two minutes, a message too large, a completed stream and a
    bot not allowed to stream; only the message differs. Only a message that says the user
    cancelled it stops the job (both spellings); anything unknown falls back to cards, which
    never cancels a job by mistake."""
    reason = " ".join(error.reason.lower().split()).rstrip(".")
    if error.code == CONTENT_STREAM_NOT_ALLOWED:
        if "cancel" in reason and "user" in reason:
            return StreamEnd.STOPPED
        if reason == "content stream is not allowed":
            return StreamEnd.REFUSED
        return StreamEnd.BROKEN
    if error.code == "BadArgument" and "streaming api is not enabled" in reason:
        return StreamEnd.REFUSED
    return StreamEnd.BROKEN


def stream_ref_id(job_id: str, page: int) -> str:
    return f"{STREAM_REF_PREFIX}{job_id}/{page}"


def job_of_stream_ref(ref_id: str) -> str | None:
    if not ref_id.startswith(STREAM_REF_PREFIX):
        return None
    return ref_id[len(STREAM_REF_PREFIX) :].rpartition("/")[0] or None


# --- one job's stream -------------------------------------------------------------------------


class Phase(enum.Enum):
    STREAMING = "streaming"
    #: Teams' Stop was pressed: the cancel is on its way; output is held until it lands.
    STOPPED = "stopped"
    #: The output goes on in live cards, as in a channel.
    CARDS = "cards"
    DONE = "done"


@attrs.frozen
class _Step:
    kind: str  # INFORMATIVE or STREAMING
    text: str
    settled: int = 0


_HAND_OVER = _Step("hand over", "")


class LiveStream:
    """One job's live output in a personal chat: a Teams stream, then cards if it must.

    `show` and `finish` are what the adapter's `send`/`edit` hand over; one task (`run`) makes
    every call for this job's live output, in order, through the conversation's outbox.
    """

    def __init__(
        self,
        *,
        job: Job,
        where: Conversation,
        target: Target,
        reply_to: str | None,
        outbox: Outbox,
        settings: TeamsSettings,
        on_stop: Callable[[LiveStream], None],
        on_refused: Callable[[LiveStream], None],
    ) -> None:
        self.job = job
        self.where = where
        self._target = target
        self._reply_to = reply_to
        self._outbox = outbox
        self._settings = settings
        self._on_stop = on_stop
        self._on_refused = on_refused
        self.phase = Phase.STREAMING
        self._pages: dict[int, LiveOutput] = {}
        self._progress: ProgressView | None = None
        self._changed = trio.Event()
        self._done = trio.Event()
        self._card: JobCard | None = None
        self._result: MessageRef | None = None
        # the stream
        self.stream_id: str | None = None
        self._sequence = 0
        self._started_at = math.inf
        self._sent_status: str | None = None
        self._sent_text = ""
        self._settled = 0
        # after Teams' Stop
        self._stop_handled = False
        self._ran_on = False
        # cards
        self._first_card_page = 0
        self._card_ids: dict[int, str] = {}
        self._shown: dict[int, LiveOutput] = {}

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def holds_stream(self) -> bool:
        """Whether this job has (or is about to open) its chat's one stream."""
        return self.phase is Phase.STREAMING

    # --- from the adapter --------------------------------------------------------------------

    def show(self, message: LiveOutput) -> None:
        """The newest version of one live page (the runner's post or edit of it)."""
        self.job = message.job
        self._pages[message.page] = message
        if message.progress is not None:
            self._progress = message.progress
        if self.phase is Phase.STOPPED and self._stop_handled and not message.job.is_finished:
            self._ran_on = True  # the cancel did not take: the output must be seen
        self._changed.set()

    async def finish(self, card: JobCard) -> MessageRef | None:
        """The job's card: the stream's final message carries it when it can. Returns that
        message, or None when the card must be posted as usual (every live card is out then)."""
        self.job = card.job
        self._card = card
        self._changed.set()
        await self._done.wait()
        return self._result

    def stop_handled(self) -> None:
        """The cancel that Teams' Stop asked for was handled (done or refused)."""
        self._stop_handled = True
        self._changed.set()

    # --- the task ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._stream()
            if self.phase is Phase.STOPPED:
                await self._after_stop()
            if self.phase is Phase.CARDS:
                await self._cards()
        except OutboxClosed:
            log.info("Teams: job %s: the adapter closed during its live output", self.job_id)
        except Exception:
            log.exception("Teams: job %s: its live output failed", self.job_id)
        finally:
            self.phase = Phase.DONE
            self._done.set()

    async def _stream(self) -> None:
        while self.phase is Phase.STREAMING:
            self._changed = trio.Event()
            if self._card is not None:
                await self._end(with_card=True)
                return
            if trio.current_time() >= self._hand_over_at:
                await self._end(with_card=False)
                return
            step = self._next_step()
            if step is _HAND_OVER:
                await self._end(with_card=False)
                return
            if step is None:
                with trio.move_on_at(self._hand_over_at):
                    await self._changed.wait()
                continue
            if not await self._send(step):
                return
            # Teams takes one request a second per stream: the next one waits, whatever comes.
            await trio.sleep(self._settings.stream_interval_s)

    @property
    def _hand_over_at(self) -> float:
        return self._started_at + self._settings.stream_max_s

    def _status(self) -> str:
        return activity_status(self._progress, state=self.job.state.value)[:INFORMATIVE_CHARS]

    def _next_step(self) -> _Step | None:
        text, settled = output_text(self._pages)
        if self.stream_id is None:
            return _Step(INFORMATIVE, self._status())  # the stream starts with what the job does
        if not self._sent_text:
            if text:
                return _Step(STREAMING, text, settled) if len(text) <= self._settings.stream_text_chars else _HAND_OVER
            status = self._status()
            return _Step(INFORMATIVE, status) if status != self._sent_status else None
        if text == self._sent_text:
            return None
        if not text.startswith(self._sent_text) or len(text) > self._settings.stream_text_chars:
            return _HAND_OVER  # a page rolled, or the message would be too long
        return _Step(STREAMING, text, settled)

    async def _send(self, step: _Step) -> bool:
        sequence = self._sequence + 1
        activity = typing_activity(step.kind, step.text, sequence=sequence, stream_id=self.stream_id)
        sent_at = trio.current_time()
        answer = await self._request(activity, job_ended=False)
        if answer is None:
            return False
        self._sequence = sequence
        if self.stream_id is None:
            if not answer.id:
                log.warning("Teams: job %s: the stream's first answer carried no id; using cards", self.job_id)
                self._fall_back(StreamEnd.BROKEN)
                return False
            self.stream_id, self._started_at = answer.id, sent_at
        if answer.dropped:
            log.info("Teams: job %s: update %d of the stream was dropped (%s)", self.job_id, sequence, answer.dropped)
        if step.kind == INFORMATIVE:
            self._sent_status = step.text
        else:
            self._sent_text, self._settled = step.text, step.settled
        return True

    async def _end(self, *, with_card: bool) -> None:
        """The final message: with the card at the job's end, else (time or size) the text so
        far, after which the output goes on in cards."""
        if self.stream_id is None:  # nothing was streamed yet: the job's output as cards
            self._fall_back(StreamEnd.BROKEN, quiet=True)
            return
        text, settled = output_text(self._pages)
        complete = text.startswith(self._sent_text) and len(text) <= self._settings.stream_text_chars
        if not complete:
            text, settled = self._sent_text, self._settled
        activity: Activity | None = None
        if with_card and complete and self._card is not None:
            card = final_activity(self._card)
            activity = final_stream_activity(closed(text) or str(card["summary"]), stream_id=self.stream_id, card=card)
            if utf16_bytes(activity) > self._settings.stream_final_max_bytes:
                activity = None  # the card is posted on its own, after the stream
        carries_card = activity is not None
        if activity is None:
            body = closed(text)
            if with_card:
                final_text = body or self._status()
            else:
                final_text = f"{body}\n\n{HANDED_OVER}" if body else f"{self._status()} {HANDED_OVER}"
            activity = final_stream_activity(final_text, stream_id=self.stream_id)
        answer = await self._request(activity, job_ended=with_card)
        if answer is None:
            return
        if carries_card:
            self._result = MessageRef(self.where, self.stream_id)
            self.phase = Phase.DONE
        else:
            self._first_card_page = settled
            self.phase = Phase.CARDS

    async def _request(self, activity: Activity, *, job_ended: bool) -> StreamAnswer | None:
        """One request of the stream; on a refusal, the phase says what comes next."""
        try:
            return await self._outbox.stream(self._target, activity, deadline_s=self._settings.stream_retry_deadline_s)
        except ConnectorError as error:
            end = classify(error)
            log.info("Teams: job %s: the stream ended (%s): %s", self.job_id, end.value, error)
            if end is StreamEnd.STOPPED:
                if job_ended:
                    self.phase = Phase.DONE  # too late to stop anything: the card is posted as usual
                else:
                    self.phase = Phase.STOPPED
                    self._on_stop(self)
            else:
                self._fall_back(end)
            return None

    def _fall_back(self, end: StreamEnd, *, quiet: bool = False) -> None:
        """The output goes on in cards, every page of it: what Teams shows of a broken stream
        is not ours to know, and a line shown twice is better than one lost."""
        if end is StreamEnd.REFUSED:
            self._on_refused(self)
        if not quiet:
            log.warning("Teams: job %s: its live output goes on in cards (the stream %s)", self.job_id, end.value)
        self._first_card_page = 0
        self.phase = Phase.CARDS

    async def _after_stop(self) -> None:
        """Hold the output until the cancel lands (the card follows) or did not (cards)."""
        while self.phase is Phase.STOPPED:
            self._changed = trio.Event()
            if self._card is not None:
                self.phase = Phase.DONE
                return
            if self._stop_handled and self._ran_on:
                log.info("Teams: job %s runs on after Teams' Stop; its output goes on in cards", self.job_id)
                self._fall_back(StreamEnd.BROKEN, quiet=True)
                return
            await self._changed.wait()

    async def _cards(self) -> None:
        """Each page from `_first_card_page` on as a live card, posted then edited in place,
        until the job's card comes (which the adapter then posts, after them)."""
        while True:
            self._changed = trio.Event()
            for index in sorted(self._pages):
                message = self._pages[index]
                if index < self._first_card_page or self._shown.get(index) is message:
                    continue
                self._shown[index] = message
                activity = live_activity(message)
                card_id = self._card_ids.get(index)
                if card_id is not None:
                    self._outbox.update(self._target, card_id, activity)
                    continue
                try:
                    self._card_ids[index] = await self._outbox.post(self._target, activity, reply_to=self._reply_to)
                except ConnectorError as error:
                    log.warning("Teams: job %s: could not post live page %d: %s", self.job_id, index, error)
            if self._card is not None and all(
                self._shown.get(index) is message for index, message in self._pages.items() if index >= self._first_card_page
            ):
                return
            await self._changed.wait()
