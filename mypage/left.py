"""Documents a host leaves on a customer's page: any ready document of the library the host may show
(documents.library.visible_documents decides), left once per customer, removable."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from deals.models import Customer
from documents.library import visible_documents
from documents.models import Document, DocumentStatus
from mypage.models import LeftDocument


async def leave(db: AsyncSession, customer: Customer, user_id: int, document_id: int, now: datetime) -> None:
    """Leave the document for the customer (already left: nothing changes)."""
    choosable = {d.id: d for d in await visible_documents(db, user_id, customer.org_id)}
    document = choosable.get(document_id)
    if document is None or document.status != DocumentStatus.READY:
        raise NotFound()
    exists = await db.scalar(
        select(LeftDocument.id).where(
            LeftDocument.customer_id == customer.id, LeftDocument.document_id == document_id
        )
    )
    if exists is None:
        try:
            async with db.begin_nested():  # a second click racing the first leaves it once, not a 500
                db.add(
                    LeftDocument(
                        org_id=customer.org_id,
                        customer_id=customer.id,
                        document_id=document_id,
                        left_by=user_id,
                        left_at=now,
                    )
                )
        except IntegrityError:
            pass


async def remove(db: AsyncSession, customer: Customer, document_id: int) -> None:
    await db.execute(
        delete(LeftDocument).where(
            LeftDocument.customer_id == customer.id, LeftDocument.document_id == document_id
        )
    )


async def left_for(db: AsyncSession, customer: Customer) -> list[Document]:
    """What the customer's page offers, whatever the org shows (the staff's view)."""
    return list(
        await db.scalars(
            select(Document)
            .join(LeftDocument, LeftDocument.document_id == Document.id)
            .where(LeftDocument.customer_id == customer.id, Document.org_id == customer.org_id)
            .order_by(LeftDocument.left_at.desc())
        )
    )
