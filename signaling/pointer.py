"""The pointer: where the person steering a document holds the mouse over the page, shown to the other side.

Pure computation, no I/O, like the room that owns it. A pointer is ephemeral: only the latest position
matters, nothing is stored, and a position that arrives too fast is not refused but held back and sent when
the budget allows, in place of any older one still held. So the other side never gets more than
:data:`PER_SECOND` positions a second from one sender (plus a short burst), and always ends on the last one,
including "the pointer left the page" (``at`` None), which must not be lost or the marker would stay.

The browser already sends at most :data:`PER_SECOND` a second (``viewer.js``); the budget here is what a
client that does not keep to it gets, whatever it sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from signaling.protocol import POINTER_PER_SECOND, PointerAt, Role

PER_SECOND = float(POINTER_PER_SECOND)
BURST = 3.0  # positions a sender may get through at once after a pause (network jitter bunches them)
_EPSILON = 1e-9  # a token refilled "exactly" by the deadline may be a rounding short of 1.0


@dataclass
class _Budget:
    """A token bucket for one sender: ``tokens`` refill at :data:`PER_SECOND` up to :data:`BURST`."""

    tokens: float = BURST
    updated: float = 0.0
    held: PointerAt | None = None
    holding: bool = False  # ``held`` None with ``holding`` means "left the page", waiting its turn

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(BURST, self.tokens + (now - self.updated) * PER_SECOND)
        self.updated = max(self.updated, now)

    def due(self) -> float:
        """When the next token is there (the held position may go then)."""
        return self.updated + max(0.0, 1.0 - self.tokens) / PER_SECOND


@dataclass(frozen=True)
class PointerMove:
    """Send this position (``at`` None: the pointer left the page) of ``by``'s pointer to the other side."""

    by: Role
    at: PointerAt | None


class PointerRelay:
    """Rate limits and coalesces each sender's pointer positions (see the module docstring)."""

    def __init__(self) -> None:
        self._budgets: dict[Role, _Budget] = {}

    def receive(self, by: Role, at: PointerAt | None, now: float) -> list[PointerMove]:
        """A position from ``by``: relayed now if its budget allows, else held (replacing an older one)."""
        budget = self._budgets.setdefault(by, _Budget(updated=now))
        budget.refill(now)
        if budget.tokens >= 1.0 - _EPSILON and not budget.holding:
            budget.tokens = max(0.0, budget.tokens - 1.0)
            return [PointerMove(by, at)]
        budget.held, budget.holding = at, True
        return self._due(now)

    def tick(self, now: float) -> list[PointerMove]:
        """Let time pass: held positions whose turn has come go out."""
        return self._due(now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has a held position to send, if any."""
        due = [budget.due() for budget in self._budgets.values() if budget.holding]
        return min(due) if due else None

    def forget(self, by: Role | None = None) -> None:
        """Drop held positions (of ``by``, or everyone's): the document closed or changed, so they are about
        a page nobody shows any more, or ``by`` may no longer steer."""
        for role, budget in self._budgets.items():
            if by is None or role == by:
                budget.held, budget.holding = None, False

    def _due(self, now: float) -> list[PointerMove]:
        moves: list[PointerMove] = []
        for by, budget in self._budgets.items():
            budget.refill(now)
            if budget.holding and budget.tokens >= 1.0 - _EPSILON:
                budget.tokens = max(0.0, budget.tokens - 1.0)
                moves.append(PointerMove(by, budget.held))
                budget.held, budget.holding = None, False
        return moves
