"""The recording's rules (レコログ), sans I/O: when it runs, the 120-minute limit and the host's stop/restart.

:class:`RecordingRules` is fed events with an injected ``now`` (seconds, the room's clock) and returns what
must happen (:data:`RecordingEffect`); ``signaling.room.Room`` carries the effects out like its own, the way
it does for ``signaling.call_media``.

Rules (seed 004, plus the issue):
- Recording is switched on or off before connecting (``armed``). When on, it starts with the call: the
  moment the first media reaches the relay (:meth:`media_started`).
- It stops exactly :data:`LIMIT` seconds after it first started in this meeting; the host is told
  :data:`NOTICE_BEFORE` seconds earlier and when it stops. The call itself goes on.
- The host may stop and restart it; a restart does not reset the limit, and a restart after the limit is
  refused with a message.
- A recorder that fails (disk full, too slow) stops the recording with its reason; the call goes on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.errors import N_

LIMIT = 120 * 60.0  # seconds of recording per meeting, counted from its first start
NOTICE_BEFORE = 10 * 60.0  # the host's notice comes this long before the limit (at 110 minutes)

LIMIT_REACHED = N_("Recording has reached its 120-minute limit and cannot be restarted in this meeting.")


class StopReason(enum.StrEnum):
    HOST = "host"  # the host pressed stop
    LIMIT = "limit"  # 120 minutes since it first started
    FAILED = "failed"  # the recorder could not write (disk full, unwritable, too slow)
    ENDED = "ended"  # the meeting ended


class Notice(enum.StrEnum):
    TEN_MINUTES_LEFT = "ten_minutes_left"
    LIMIT_REACHED = "limit_reached"


@dataclass(frozen=True)
class StartRecording:
    """Start writing the room's tracks (a new set of files after a restart)."""

    at: float


@dataclass(frozen=True)
class StopRecording:
    """Stop writing and finish the files."""

    at: float
    reason: StopReason


@dataclass(frozen=True)
class RecordingShown:
    """Tell both sides (and observers) whether 「録画中」 is shown: see :meth:`RecordingRules.status`."""


@dataclass(frozen=True)
class HostNotice:
    """Tell the host ``notice`` (at 110 minutes, and when the limit stops the recording)."""

    notice: Notice


@dataclass(frozen=True)
class Refused:
    """The host's request cannot be done; tell the host ``message`` (a message id)."""

    message: str


RecordingEffect = StartRecording | StopRecording | RecordingShown | HostNotice | Refused


@dataclass
class RecordingRules:
    armed: bool = False  # the host's 「この商談を録画する（レコログ）」 switch, set before connecting
    first_started: float | None = None  # when it first started in this meeting (the limit counts from it)
    running: bool = False
    noticed: bool = False
    stopped_by: StopReason | None = None
    failure: str = ""  # the recorder's reason, when it failed

    @property
    def deadline(self) -> float | None:
        return None if self.first_started is None else self.first_started + LIMIT

    def media_started(self, now: float) -> list[RecordingEffect]:
        """The first media reached the relay: an armed recording starts with the call."""
        if not self.armed or self.first_started is not None or self.running:
            return []
        return self._start(now)

    def host_switch(self, on: bool, now: float) -> list[RecordingEffect]:
        """The host's stop/restart button on the call page."""
        if not on:
            if not self.running:
                return [RecordingShown()]
            return self._stop(now, StopReason.HOST)
        if self.running:
            return [RecordingShown()]
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            return [Refused(LIMIT_REACHED), RecordingShown()]
        self.armed = True
        return self._start(now)

    def failed(self, reason: str, now: float) -> list[RecordingEffect]:
        """The recorder gave up (disk full, too slow): the recording stops, the call goes on."""
        if not self.running:
            return []
        self.failure = reason
        return self._stop(now, StopReason.FAILED)

    def ended(self, now: float) -> list[RecordingEffect]:
        """The meeting ended: finish the files."""
        if not self.running:
            return []
        self.running = False
        self.stopped_by = StopReason.ENDED
        return [StopRecording(now, StopReason.ENDED)]

    def tick(self, now: float) -> list[RecordingEffect]:
        deadline = self.deadline
        if deadline is None or not self.running:
            return []
        effects: list[RecordingEffect] = []
        if not self.noticed and now >= deadline - NOTICE_BEFORE:
            self.noticed = True
            if now < deadline:
                effects.append(HostNotice(Notice.TEN_MINUTES_LEFT))
        if now >= deadline:
            self.noticed = True
            effects.extend(self._stop(deadline, StopReason.LIMIT))
            effects.append(HostNotice(Notice.LIMIT_REACHED))
        return effects

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, if ever."""
        deadline = self.deadline
        if deadline is None or not self.running:
            return None
        return deadline if self.noticed else deadline - NOTICE_BEFORE

    def remaining(self, now: float) -> float | None:
        """Seconds of recording left in this meeting (None before it first started)."""
        deadline = self.deadline
        return None if deadline is None else max(0.0, deadline - now)

    def _start(self, now: float) -> list[RecordingEffect]:
        if self.first_started is None:
            self.first_started = now
        self.running, self.stopped_by, self.failure = True, None, ""
        return [StartRecording(now), RecordingShown()]

    def _stop(self, at: float, reason: StopReason) -> list[RecordingEffect]:
        self.running, self.stopped_by = False, reason
        return [StopRecording(at, reason), RecordingShown()]
