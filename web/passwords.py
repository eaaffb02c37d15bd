"""Password hashing (argon2id) off the event loop.

An argon2 verification costs tens to hundreds of milliseconds of CPU by design. Run on the event loop, a
burst of sign-ins would hold every room's frames for that long per attempt; so hashing and verifying run in
one small thread pool of their own (argon2-cffi releases the GIL), at a lower CPU priority than the event
loop, and a burst waits its turn there instead. The pool is bounded: at most :data:`WORKERS` hashes run at
once, whatever arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

WORKERS = 1  # each verification already runs several threads inside argon2 (its parallelism, 4)
NICENESS = 10  # the pool's threads (and argon2's own, which inherit it) yield the CPU to the event loop


def _lower_priority() -> None:
    # Linux applies niceness per thread; threads argon2 starts inherit it from the one that starts them.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)


# argon2-cffi's defaults, RFC 9106's second recommended option: argon2id, t=3, 64 MiB, p=4.
PRODUCTION = PasswordHasher()
_hasher = PRODUCTION
_pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="argon2", initializer=_lower_priority)
# A real hash to verify against when the email is unknown, so timing does not reveal which emails exist.
DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash new passwords with ``hasher``'s parameters from now on (a stored hash keeps its own: verifying
    it costs what it cost to make, and :func:`needs_rehash` upgrades it at the next sign-in). Only the test
    suite calls this, for a cheaper cost in the tests that are not about argon2's."""
    global _hasher, DUMMY_HASH
    _hasher = hasher
    DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


def hash_now(password: str) -> str:
    """Blocking; for the command line. Handlers use :func:`hash_password`."""
    return _hasher.hash(password)


def verify_now(password_hash: str, password: str) -> bool:
    """Blocking; for the command line. Handlers use :func:`verify_password`."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, hash_now, password)


async def verify_password(password_hash: str, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_pool, verify_now, password_hash, password)
