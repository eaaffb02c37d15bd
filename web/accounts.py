"""Organisations and users: creating them, signing in, and org-scoped look-ups.

Every function that reads a user for someone else takes the caller's ``org_id`` and treats a row of
another org exactly like a missing one (:class:`~core.errors.NotFound`), so ids never leak across tenants.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, InvalidInput, NotFound
from store.models import Org, Role, User
from web import login_sessions, passwords
from web.passwords import hash_password, verify_password

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
MIN_PASSWORD_LENGTH = 10


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput("The password must be at least {count} characters.", count=MIN_PASSWORD_LENGTH)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise InvalidInput("Enter a valid email address.")
    return email


async def create_org(db: AsyncSession, slug: str, name: str) -> Org:
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise InvalidInput("An org id uses 2–63 lowercase letters, digits and hyphens.")
    if await db.scalar(select(Org).where(Org.slug == slug)):
        raise Conflict("An org with this id already exists.")
    org = Org(slug=slug, name=name.strip() or slug)
    db.add(org)
    await db.flush()
    return org


async def org_by_slug(db: AsyncSession, slug: str) -> Org:
    org = await db.scalar(select(Org).where(Org.slug == slug.strip().lower()))
    if org is None:
        raise NotFound("No such org.")
    return org


async def add_user(
    db: AsyncSession, org: Org, email: str, display_name: str, role: Role | str, password: str
) -> User:
    email = normalise_email(email)
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput("Choose a role: admin, manager or host.") from exc
    check_password_rules(password)
    if await db.scalar(select(User).where(func.lower(User.email) == email)):
        raise Conflict("A user with this email already exists.")
    user = User(
        org_id=org.id,
        email=email,
        display_name=display_name.strip() or email.split("@")[0],
        role=role,
        password_hash=await hash_password(password),
        is_active=True,
        locale="",
    )
    db.add(user)
    await db.flush()
    return user


async def authenticate(db: AsyncSession, email: str, password: str) -> User | None:
    """The active user with this email and password, or None. Costs one argon2 verify either way (in the
    hashing pool, off the event loop)."""
    user = await db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        await verify_password(passwords.DUMMY_HASH, password)
        return None
    if not await verify_password(user.password_hash, password) or not user.is_active:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    return user


async def password_matches(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; with no hash (unknown email) one argon2 verification
    is spent all the same, so timing does not reveal which emails exist."""
    if password_hash is None:
        await verify_password(passwords.DUMMY_HASH, password)
        return False
    return await verify_password(password_hash, password)


async def change_password(db: AsyncSession, user: User, current: str, new: str) -> None:
    if not await verify_password(user.password_hash, current):
        raise InvalidInput("The current password is not correct.")
    check_password_rules(new)
    user.password_hash = await hash_password(new)
    await login_sessions.end_all(db, user.id)


async def set_password(db: AsyncSession, user: User, new: str) -> None:
    check_password_rules(new)
    user.password_hash = await hash_password(new)
    await login_sessions.end_all(db, user.id)


async def org_users(db: AsyncSession, org_id: int) -> list[User]:
    result = await db.scalars(select(User).where(User.org_id == org_id).order_by(User.id))
    return list(result)


async def org_user(db: AsyncSession, org_id: int, user_id: int) -> User:
    user = await db.scalar(select(User).where(User.id == user_id, User.org_id == org_id))
    if user is None:
        raise NotFound()
    return user


async def set_active(db: AsyncSession, org_id: int, user_id: int, active: bool, acting: User) -> User:
    user = await org_user(db, org_id, user_id)
    if user.id == acting.id and not active:
        raise InvalidInput("You cannot deactivate your own account.")
    if user.is_active != active:
        user.is_active = active
    if not active:
        await login_sessions.end_all(db, user.id)
    return user
