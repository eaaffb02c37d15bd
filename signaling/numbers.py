"""Connect numbers (接続ナンバー): four digits that carry a phone call into a shared screen.

The guest taps a button and gets a number from ``0000`` to ``9999``; the host types it to connect. The rules:

- A number lives exactly ``ttl`` seconds (120) by the injected clock: redeeming at 119.9 s works, at 120.0 s
  it is expired. Validity never depends on Redis' own time; Redis key TTLs only collect garbage.
- It is drawn with the ``secrets`` CSPRNG, uniformly among the numbers not live right now, and is unique
  among live numbers (across all nodes for :class:`RedisNumberStore`). Draws are rejection sampling with a
  bounded number of tries, then a uniform pick from the complement of the live set, so a draw stays exact
  and bounded when the space is nearly full.
- A number is bound to the issuing browser's ``guest_token``; one token has at most one live number.
  Issuing again revokes the previous one, and the new number always differs from it.
- When ``capacity_limit`` numbers are live (other than the token's own), issuing raises
  :class:`NumbersCongested` rather than ever handing out a duplicate.
- Redeeming is single use and atomic. A redeemed, expired or revoked number stops being live at once (it may
  be issued again to someone else later), but is remembered until ``REMEMBER`` seconds after its expiry so
  the host hears "expired" (revoked counts as expired: the customer's screen shows a newer number) or
  "already used" instead of "unknown".
"""

from __future__ import annotations

import abc
import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.clock import Clock, wall_clock
from core.errors import N_, Conflict, NotFound, TsunaguError, Unavailable
from core.redis_errors import redis_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis

SPACE = 10_000
ALL_NUMBERS = tuple(f"{n:04d}" for n in range(SPACE))
_FORMAT = re.compile(r"[0-9]{4}")
_SAMPLES = 24  # rejection-sampling tries before picking from the complement of the live set


class NumberUnknown(NotFound):
    code = "number_unknown"
    message = N_("This connect number does not exist. Please check the number with the customer.")


class NumberExpired(TsunaguError):
    code = "number_expired"
    status = 410
    message = N_("This connect number has expired. Ask the customer to issue a new one.")


class NumberUsed(Conflict):
    code = "number_used"
    message = N_("This connect number has already been used. Ask the customer to issue a new one.")


class NumbersCongested(Unavailable):
    code = "numbers_congested"
    message = N_("Connections are very busy right now. Please wait a moment and try again.")


@dataclass(frozen=True)
class ConnectNumber:
    number: str  # always 4 digits, e.g. "0427"
    guest_token: str  # the issuing browser's token; binds the number to that browser
    issued_at: float  # clock seconds
    expires_at: float  # issued_at + ttl


class NumberStore(abc.ABC):
    REMEMBER = 600.0
    """Seconds after expiry during which a spent number is still reported as expired or used."""

    def __init__(self, clock: Clock = wall_clock, ttl: float = 120.0, capacity_limit: int = 9000) -> None:
        if ttl <= 0 or not 1 <= capacity_limit <= SPACE:
            raise ValueError(f"ttl must be > 0 and capacity_limit within 1..{SPACE}")
        self.clock = clock
        self.ttl = ttl
        self.capacity_limit = capacity_limit

    @abc.abstractmethod
    async def issue(self, guest_token: str) -> ConnectNumber:
        """A fresh live number for ``guest_token``, revoking its previous one; NumbersCongested when full."""

    @abc.abstractmethod
    async def redeem(self, number: str) -> ConnectNumber:
        """Use ``number`` once; NumberUnknown, NumberExpired or NumberUsed when that is not possible."""

    @abc.abstractmethod
    async def revoke(self, guest_token: str) -> None:
        """Drop ``guest_token``'s live number, if any."""

    @abc.abstractmethod
    async def live_count(self) -> int:
        """How many numbers are live now."""

    @abc.abstractmethod
    async def current(self, guest_token: str) -> ConnectNumber | None:
        """``guest_token``'s live number, if any."""


class MemoryNumberStore(NumberStore):
    """Plain dicts in this process; right for a single node. No method awaits, so each one is atomic."""

    def __init__(self, clock: Clock = wall_clock, ttl: float = 120.0, capacity_limit: int = 9000) -> None:
        super().__init__(clock, ttl, capacity_limit)
        self._live: dict[str, ConnectNumber] = {}  # in issue order, which is expiry order
        self._tokens: dict[str, str] = {}  # guest token -> its live number
        self._spent: dict[str, tuple[ConnectNumber, type[TsunaguError]]] = {}  # number -> why it is gone

    def _retire(self, number: str, error: type[TsunaguError]) -> ConnectNumber:
        record = self._live.pop(number)
        if self._tokens.get(record.guest_token) == number:
            del self._tokens[record.guest_token]
        self._spent[number] = (record, error)
        return record

    def _prune(self, now: float) -> None:
        """Retire expired numbers and forget old ones, oldest first (each dict is roughly in expiry order)."""
        for _ in range(len(self._live)):
            number, record = next(iter(self._live.items()))
            if now < record.expires_at:
                break
            self._retire(number, NumberExpired)
        for _ in range(len(self._spent)):
            number, (record, _error) = next(iter(self._spent.items()))
            if now < record.expires_at + self.REMEMBER:
                break
            del self._spent[number]

    def _draw(self) -> str | None:
        for _ in range(_SAMPLES):
            candidate = ALL_NUMBERS[secrets.randbelow(SPACE)]
            if candidate not in self._live:
                return candidate
        free = [number for number in ALL_NUMBERS if number not in self._live]
        return secrets.choice(free) if free else None

    async def issue(self, guest_token: str) -> ConnectNumber:
        now = self.clock()
        self._prune(now)
        own = self._tokens.get(guest_token)
        if len(self._live) - (own is not None) >= self.capacity_limit:
            raise NumbersCongested()
        number = self._draw()  # the token's own number still counts as live, so the new one differs
        if number is None:
            raise NumbersCongested()
        if own is not None:
            self._retire(own, NumberExpired)
        record = ConnectNumber(number, guest_token, now, now + self.ttl)
        self._spent.pop(number, None)
        self._live[number] = record
        self._tokens[guest_token] = number
        return record

    async def redeem(self, number: str) -> ConnectNumber:
        if not _FORMAT.fullmatch(number):
            raise NumberUnknown()
        now = self.clock()
        self._prune(now)
        record = self._live.get(number)
        if record is not None:
            if now >= record.expires_at:  # missed by _prune only if the clock ever ran backwards
                self._retire(number, NumberExpired)
                raise NumberExpired()
            return self._retire(number, NumberUsed)
        spent = self._spent.get(number)
        if spent is not None and now < spent[0].expires_at + self.REMEMBER:
            raise spent[1]()
        raise NumberUnknown()

    async def revoke(self, guest_token: str) -> None:
        self._prune(self.clock())
        own = self._tokens.get(guest_token)
        if own is not None:
            self._retire(own, NumberExpired)

    async def live_count(self) -> int:
        self._prune(self.clock())
        return len(self._live)

    async def current(self, guest_token: str) -> ConnectNumber | None:
        now = self.clock()
        self._prune(now)
        own = self._tokens.get(guest_token)
        record = self._live.get(own) if own is not None else None
        return record if record is not None and now < record.expires_at else None


# KEYS: live (zset number -> expires_at), bits (bitmap of the live numbers, for the complement pick), records
# (hash number -> JSON [state, number, token, issued_at, expires_at]), tokens (hash guest token -> its live
# number), forget (zset number -> when its record is dropped). ARGV[1] is always now. Times travel as Python
# float reprs, so Lua, Redis scores and Python compare the very same doubles.
_PRELUDE = """
local live, bits, records, tokens, forget = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now = ARGV[1]

local function retire(number, state)
  redis.call('ZREM', live, number)
  redis.call('SETBIT', bits, tonumber(number), 0)
  local raw = redis.call('HGET', records, number)
  if not raw then return false end
  local record = cjson.decode(raw)
  if redis.call('HGET', tokens, record[3]) == number then redis.call('HDEL', tokens, record[3]) end
  record[1] = state
  raw = cjson.encode(record)
  redis.call('HSET', records, number, raw)
  return raw
end

for _, number in ipairs(redis.call('ZRANGEBYSCORE', live, '-inf', now)) do retire(number, 'expired') end
for _, number in ipairs(redis.call('ZRANGEBYSCORE', forget, '-inf', now)) do
  redis.call('HDEL', records, number)
end
redis.call('ZREMRANGEBYSCORE', forget, '-inf', now)
"""

# ARGV: now, expires_at, forget_at, guest token, capacity limit, key TTL in ms (garbage collection only),
# random bytes (big-endian 16-bit values), how many of those values are candidates; the rest serve the
# complement pick. Values are used by rejection, so every draw is exactly uniform.
_ISSUE = (
    _PRELUDE
    + """
local token, random, samples = ARGV[4], ARGV[7], tonumber(ARGV[8])
local own = redis.call('HGET', tokens, token)
local taken = redis.call('ZCARD', live)
local others = taken
if own then others = taken - 1 end
if others >= tonumber(ARGV[5]) or taken >= 10000 then return {'congested'} end

local function value(i)
  return string.byte(random, 2 * i - 1) * 256 + string.byte(random, 2 * i)
end

local function nth_free(map, index)
  for offset = 1, 1250 do
    local byte = string.byte(map, offset) or 0
    for position = 0, 7 do  -- bit 0 of the bitmap is the high bit of its first byte
      if bit.band(byte, 2 ^ (7 - position)) == 0 then
        if index == 0 then return (offset - 1) * 8 + position end
        index = index - 1
      end
    end
  end
end

local chosen = nil
for i = 1, samples do
  local v = value(i)
  if v < 60000 and redis.call('GETBIT', bits, v % 10000) == 0 then chosen = v % 10000 break end
end
if not chosen then
  local free = 10000 - taken
  local limit = math.floor(65536 / free) * free
  for i = samples + 1, #random / 2 do
    local v = value(i)
    if v < limit then chosen = nth_free(redis.call('GET', bits) or '', v % free) break end
  end
  if not chosen then return {'retry'} end
end
chosen = string.format('%04d', chosen)
if own then retire(own, 'revoked') end
local raw = cjson.encode({'live', chosen, token, ARGV[1], ARGV[2]})
redis.call('ZADD', live, ARGV[2], chosen)
redis.call('SETBIT', bits, tonumber(chosen), 1)
redis.call('HSET', records, chosen, raw)
redis.call('HSET', tokens, token, chosen)
redis.call('ZADD', forget, ARGV[3], chosen)
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[6]) end
return {'ok', raw}
"""
)

# ARGV: now, number.
_REDEEM = (
    _PRELUDE
    + """
local raw = redis.call('HGET', records, ARGV[2])
if not raw then return {'unknown'} end
local state = cjson.decode(raw)[1]
if state == 'live' then return {'ok', retire(ARGV[2], 'used')} end
return {state}
"""
)

# ARGV: now, guest token.
_REVOKE = (
    _PRELUDE
    + """
local own = redis.call('HGET', tokens, ARGV[2])
if own then retire(own, 'revoked') end
return 1
"""
)

# ARGV: now, guest token.
_CURRENT = (
    _PRELUDE
    + """
local own = redis.call('HGET', tokens, ARGV[2])
if not own then return false end
return redis.call('HGET', records, own)
"""
)

_REDIS_ERRORS: dict[str, type[TsunaguError]] = {
    "unknown": NumberUnknown,
    "expired": NumberExpired,
    "revoked": NumberExpired,
    "used": NumberUsed,
    "congested": NumbersCongested,
}
_PICKS = 8  # values for the complement pick; each is rejected with probability < 0.16, all eight < 1e-6
_RETRIES = 3  # fresh randomness per retry, so running out is a practical impossibility (< 1e-18)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _record(raw: bytes | str) -> ConnectNumber:
    _, number, token, issued_at, expires_at = json.loads(_text(raw))
    return ConnectNumber(number, token, float(issued_at), float(expires_at))


class RedisNumberStore(NumberStore):
    """Numbers in Redis, claimed and redeemed by Lua scripts, so any number of nodes can share them.

    A Redis that does not answer surfaces as :class:`~core.errors.SharedStoreUnavailable` (HTTP 503)."""

    def __init__(
        self,
        redis: Redis,
        clock: Clock = wall_clock,
        ttl: float = 120.0,
        capacity_limit: int = 9000,
        prefix: str = "tsunagu:numbers",
    ) -> None:
        super().__init__(clock, ttl, capacity_limit)
        self.redis = redis
        self.keys = [f"{prefix}:{name}" for name in ("live", "bits", "records", "tokens", "forget")]
        self._gc_ms = int((ttl + self.REMEMBER + 60) * 1000)
        self._issue = redis.register_script(_ISSUE)
        self._redeem = redis.register_script(_REDEEM)
        self._revoke = redis.register_script(_REVOKE)
        self._current = redis.register_script(_CURRENT)

    async def issue(self, guest_token: str) -> ConnectNumber:
        now = self.clock()
        expires_at = now + self.ttl
        for _ in range(_RETRIES):
            random = secrets.token_bytes(2 * (_SAMPLES + _PICKS))
            args: list[str | int | bytes] = [repr(now), repr(expires_at), repr(expires_at + self.REMEMBER)]
            args += [guest_token, self.capacity_limit, self._gc_ms, random, _SAMPLES]
            with redis_errors():
                reply = await self._issue(keys=self.keys, args=args)
            status = _text(reply[0])
            if status == "ok":
                return _record(reply[1])
            if status != "retry":
                raise _REDIS_ERRORS[status]()
        raise NumbersCongested()

    async def redeem(self, number: str) -> ConnectNumber:
        if not _FORMAT.fullmatch(number):
            raise NumberUnknown()
        with redis_errors():
            reply = await self._redeem(keys=self.keys, args=[repr(self.clock()), number])
        status = _text(reply[0])
        if status != "ok":
            raise _REDIS_ERRORS[status]()
        return _record(reply[1])

    async def revoke(self, guest_token: str) -> None:
        with redis_errors():
            await self._revoke(keys=self.keys, args=[repr(self.clock()), guest_token])

    async def live_count(self) -> int:
        with redis_errors():
            return int(await self.redis.zcount(self.keys[0], f"({self.clock()!r}", "+inf"))

    async def current(self, guest_token: str) -> ConnectNumber | None:
        now = self.clock()
        with redis_errors():
            raw = await self._current(keys=self.keys, args=[repr(now), guest_token])
        if raw is None:
            return None
        record = _record(raw)
        return record if now < record.expires_at else None
