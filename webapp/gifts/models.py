"""The gifting company's tables: items, the label vocabulary, labels with provenance, the
labelling log (for undo), rules, import profiles and imports, and the workbench's settings.

Provenance lives on each ``ItemLabel`` row: ``source`` is "human" (``created_by`` and
``created_at`` say who and when), "rule" (``rule_id``, ``rule_name``) or "model"
(``model_version``, ``confidence``). Rule and model rows are suggestions until a person
reviews the item; a reviewed item (``status`` accepted or rejected) is never touched by rules or
models again, so a human label is never overwritten.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.auth.models import utcnow
from webapp.extensions import db
from webapp.singletons import singleton_row

NAME_MAX = 300
VENDOR_MAX = 200
CATEGORY_MAX = 120
SKU_MAX = 100
URL_MAX = 1000
LABEL_MAX = 60
#: ``str.casefold`` can make a name longer (ß -> ss); three times is the worst case.
KEY_FACTOR = 3
#: The boolean attributes an item can have, in the order forms and exports show them.
ATTRIBUTES = ("local", "sustainable", "brandable", "perishable")
#: Where a label on an item came from.
SOURCES = ("human", "rule", "model")
#: An item waits in the queue ("pending") until a person accepts or rejects it.
STATUSES = ("pending", "accepted", "rejected")
#: The labelling queue's orders.
QUEUE_ORDERS = ("uncertain", "newest", "vendor")
DEFAULT_MIN_LABELS = 30
DEFAULT_RANDOM_SHARE = 0.10
DEFAULT_LEARNED_WEIGHT = 3.0
DEFAULT_MIN_GIFTS = 20


def name_key(name: str | None) -> str:
    """The form of a name (or vendor) that duplicates are found by: words only, case folded.

    "Fresh  Roast Coffee, 250g" and "fresh roast coffee 250 g" differ; "Fresh roast coffee,
    250g" and "FRESH ROAST COFFEE 250g" do not.
    """
    if not name:
        return ""
    kept = "".join(ch if ch.isalnum() else " " for ch in name.casefold())
    return " ".join(kept.split())


def new_public_id() -> str:
    """A random id, safe to show in URLs."""
    return uuid.uuid4().hex


class Item(db.Model):
    """Something the company can put in a gift, with where it was imported from."""

    __tablename__ = "gifts_item"
    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="price_not_negative"),
        CheckConstraint("status IN ('pending', 'accepted', 'rejected')", name="status_known"),
        # The labelling queue reads one row per keypress, by one of three orders; each has
        # an index that starts with the pending filter so "next item" is an index seek.
        Index("ix_gifts_item_queue_uncertain", "status", "skipped", "uncertainty", "id"),
        Index("ix_gifts_item_queue_newest", "status", "skipped", "created_at", "id"),
        Index("ix_gifts_item_queue_vendor", "status", "skipped", "vendor_key", "id"),
        Index("ix_gifts_item_duplicate", "name_key", "vendor_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str | None] = mapped_column(String(SKU_MAX), index=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    name_key: Mapped[str] = mapped_column(String(NAME_MAX * KEY_FACTOR))
    description: Mapped[str] = mapped_column(Text, default="")
    vendor: Mapped[str] = mapped_column(String(VENDOR_MAX), default="")
    vendor_key: Mapped[str] = mapped_column(String(VENDOR_MAX * KEY_FACTOR), default="")
    category: Mapped[str] = mapped_column(String(CATEGORY_MAX), default="", index=True)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    local: Mapped[bool] = mapped_column(default=False, server_default=false())
    sustainable: Mapped[bool] = mapped_column(default=False, server_default=false())
    brandable: Mapped[bool] = mapped_column(default=False, server_default=false())
    perishable: Mapped[bool] = mapped_column(default=False, server_default=false())
    image_url: Mapped[str | None] = mapped_column(String(URL_MAX))
    #: The file (or "manual", "demo") and the line of that file the item came from.
    source: Mapped[str] = mapped_column(String(255), default="manual")
    source_row: Mapped[int | None] = mapped_column(Integer)
    import_id: Mapped[str | None] = mapped_column(
        ForeignKey("gifts_import.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    #: pending (in the queue), accepted (labels reviewed) or rejected (not for gifts).
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    #: Skipped items go to the back of the queue until the others are done.
    skipped: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: How unsure the suggestions are, 0 (sure) to 1 (no idea); the queue can show the least
    #: certain first. Computed in batch (rules apply, model retrain), never per request.
    uncertainty: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column()

    labels: Mapped[list[ItemLabel]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True)

    @property
    def attributes(self) -> dict[str, bool]:
        """The boolean attributes by name."""
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def __repr__(self) -> str:
        return f"<Item {self.id} {self.name!r}>"


class LabelGroup(db.Model):
    """A family of labels (occasion, theme, audience); single- or multi-label."""

    __tablename__ = "gifts_label_group"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(LABEL_MAX), unique=True)
    name_key: Mapped[str] = mapped_column(String(LABEL_MAX * KEY_FACTOR), unique=True)
    #: True when an item may carry several labels of this group (themes); False for one
    #: (an item's main occasion).
    multi: Mapped[bool] = mapped_column(default=True, server_default=true())
    position: Mapped[int] = mapped_column(default=0)

    labels: Mapped[list[Label]] = relationship(
        back_populates="group", order_by="Label.position, Label.name_key",
        cascade="all, delete-orphan", passive_deletes=True)


class Label(db.Model):
    """One word of a group's vocabulary (``coffee`` in theme)."""

    __tablename__ = "gifts_label"
    __table_args__ = (UniqueConstraint("group_id", "name_key", name="label_unique_in_group"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("gifts_label_group.id", ondelete="CASCADE"),
                                          index=True)
    name: Mapped[str] = mapped_column(String(LABEL_MAX))
    name_key: Mapped[str] = mapped_column(String(LABEL_MAX * KEY_FACTOR))
    position: Mapped[int] = mapped_column(default=0)

    group: Mapped[LabelGroup] = relationship(back_populates="labels")

    @property
    def qualified_name(self) -> str:
        """``group:label``, as rules, exports and the model name labels."""
        return f"{self.group.name}:{self.name}"


class ItemLabel(db.Model):
    """A label on an item, with where it came from (see the module's docstring)."""

    __tablename__ = "gifts_item_label"
    __table_args__ = (
        UniqueConstraint("item_id", "label_id", name="item_label_once"),
        CheckConstraint("source IN ('human', 'rule', 'model')", name="source_known"),
        Index("ix_gifts_item_label_label_source", "label_id", "source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("gifts_item.id", ondelete="CASCADE"),
                                         index=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("gifts_label.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(8))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("gifts_rule.id", ondelete="SET NULL"))
    #: The rule's name when it labelled (kept if the rule is later renamed or deleted).
    rule_name: Mapped[str | None] = mapped_column(String(120))
    model_version: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float | None] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="labels")
    label: Mapped[Label] = relationship(lazy="joined")


class LabelDecision(db.Model):
    """One labelling decision, with the item's state before and after, so it can be undone.

    A bulk action writes one row per item, all with the same ``batch_id``; undoing the batch
    restores every item's ``before``.
    """

    __tablename__ = "gifts_label_decision"
    __table_args__ = (Index("ix_gifts_decision_user_recent", "created_by", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("gifts_item.id", ondelete="CASCADE"),
                                         index=True)
    #: accept, reject, skip, edit or bulk.
    action: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str | None] = mapped_column(String(32), index=True)
    #: {"status", "skipped", "reviewed_by", "reviewed_at", "labels": [ItemLabel fields]}
    before: Mapped[dict] = mapped_column(JSON)
    after: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column()


#: Which labels a rule assigns.
rule_label = Table(
    "gifts_rule_label",
    db.metadata,
    Column("rule_id", ForeignKey("gifts_rule.id", ondelete="CASCADE"), primary_key=True),
    Column("label_id", ForeignKey("gifts_label.id", ondelete="CASCADE"), primary_key=True,
           index=True),
)


class Rule(db.Model):
    """A readable condition on an item's fields that assigns labels (see ``ml.labels``)."""

    __tablename__ = "gifts_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    #: Lower numbers run first; in a single-label group the first matching rule wins.
    priority: Mapped[int] = mapped_column(default=100)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    #: {"match": "all"|"any", "conditions": [{"field", "op", "value"}]}; see ml.labels.
    condition: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: Optimistic locking: every ORM UPDATE checks and bumps it, so two staff editing the same
    #: rule cannot silently overwrite each other (the second save raises StaleDataError).
    version: Mapped[int] = mapped_column(server_default=text("1"))

    labels: Mapped[list[Label]] = relationship(secondary=rule_label, lazy="selectin")

    __mapper_args__ = {"version_id_col": version}


class ImportProfile(db.Model):
    """A saved column mapping for one source (a partner's price list, a sheet export)."""

    __tablename__ = "gifts_import_profile"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    #: Who sends files like this ("Northwind price list"), shown beside the name.
    source: Mapped[str] = mapped_column(String(200), default="")
    #: {"source column header": "item field"}; unmapped columns are absent.
    mapping: Mapped[dict] = mapped_column(JSON, default=dict)
    #: "skip" or "merge": what to do with a row that duplicates an existing item.
    on_duplicate: Mapped[str] = mapped_column(String(8), default="skip")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ItemImport(db.Model):
    """One uploaded file, from mapping to its counts and reject file."""

    __tablename__ = "gifts_import"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_public_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    #: Where the upload waits for its job (under the instance folder), removed when done.
    stored_path: Mapped[str | None] = mapped_column(String(1000))
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("gifts_import_profile.id", ondelete="SET NULL"))
    #: mapping (waiting for staff), queued, running, done or failed.
    status: Mapped[str] = mapped_column(String(16), default="mapping")
    mapping: Mapped[dict] = mapped_column(JSON, default=dict)
    on_duplicate: Mapped[str] = mapped_column(String(8), default="skip")
    #: The headers of the file, and those no field was mapped to.
    headers: Mapped[list] = mapped_column(JSON, default=list)
    unmapped: Mapped[list] = mapped_column(JSON, default=list)
    total_rows: Mapped[int] = mapped_column(default=0)
    added: Mapped[int] = mapped_column(default=0)
    merged: Mapped[int] = mapped_column(default=0)
    skipped_duplicates: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    job_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


class ImportReject(db.Model):
    """A row an import could not take, with its line and why (the reject file's rows)."""

    __tablename__ = "gifts_import_reject"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[str] = mapped_column(ForeignKey("gifts_import.id", ondelete="CASCADE"),
                                           index=True)
    line: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    #: The row's cells as read, so the reject file can be fixed and imported again.
    cells: Mapped[list] = mapped_column(JSON, default=list)


class GiftsSettings(db.Model):
    """The labelling workbench's settings (one row)."""

    __tablename__ = "gifts_settings"
    __table_args__ = (
        CheckConstraint("min_labels_per_label >= 1", name="min_labels_positive"),
        CheckConstraint("random_share >= 0 AND random_share <= 1", name="random_share_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Human labels each label of a group needs before the model's suggestions replace the
    #: rules' for that group.
    min_labels_per_label: Mapped[int] = mapped_column(default=DEFAULT_MIN_LABELS)
    queue_order: Mapped[str] = mapped_column(String(16), default="uncertain")
    #: The share of "least certain first" picks drawn at random instead.
    random_share: Mapped[float] = mapped_column(Float, default=DEFAULT_RANDOM_SHARE)
    #: How much the learned gift model's score (0-1) adds to an item's cold-start score.
    learned_weight: Mapped[float] = mapped_column(Float, default=DEFAULT_LEARNED_WEIGHT,
                                                  server_default=str(DEFAULT_LEARNED_WEIGHT))
    #: Past gifts needed before the gift model is trained and used.
    min_gifts: Mapped[int] = mapped_column(default=DEFAULT_MIN_GIFTS,
                                           server_default=str(DEFAULT_MIN_GIFTS))


def gifts_settings() -> GiftsSettings:
    """The settings row, created with the defaults on first use (race-free)."""
    return singleton_row(GiftsSettings, {"min_labels_per_label": DEFAULT_MIN_LABELS,
                                         "queue_order": "uncertain",
                                         "random_share": DEFAULT_RANDOM_SHARE,
                                         "learned_weight": DEFAULT_LEARNED_WEIGHT,
                                         "min_gifts": DEFAULT_MIN_GIFTS})


# --- Clients and gifts (the recommendations' history) -----------------------------------------

#: A gift's life: drafted by staff, proposed to the client, then sent or declined.
GIFT_STATUSES = ("draft", "proposed", "sent", "declined")


class Client(db.Model):
    """A company that orders gifts."""

    __tablename__ = "gifts_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    name_key: Mapped[str] = mapped_column(String(200 * KEY_FACTOR), unique=True)
    industry: Mapped[str] = mapped_column(String(80), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    #: True for clients generated for the demo and tests.
    synthetic: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Optimistic locking: every ORM UPDATE checks and bumps it, so two staff editing the same
    #: client cannot silently overwrite each other (the second save raises StaleDataError).
    version: Mapped[int] = mapped_column(server_default=text("1"))

    gifts: Mapped[list[Gift]] = relationship(back_populates="client",
                                             order_by="Gift.created_at.desc()")

    __mapper_args__ = {"version_id_col": version}


class Gift(db.Model):
    """A named bundle of items for one client's occasion, with the brief it answered."""

    __tablename__ = "gifts_gift"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'proposed', 'sent', 'declined')",
                        name="gift_status_known"),
        CheckConstraint("recipients >= 1", name="recipients_positive"),
        Index("ix_gifts_gift_status_date", "status", "gift_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("gifts_client.id", ondelete="CASCADE"),
                                           index=True)
    name: Mapped[str] = mapped_column(String(200))
    occasion: Mapped[str] = mapped_column(String(LABEL_MAX), default="")
    gift_date: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="draft", server_default="draft")
    recipients: Mapped[int] = mapped_column(default=1)
    budget_min: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    budget_max: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))
    #: The brief's themes and exclusions (label or attribute names), as JSON lists.
    themes: Mapped[list] = mapped_column(JSON, default=list)
    exclude: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    synthetic: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    client: Mapped[Client] = relationship(back_populates="gifts")
    lines: Mapped[list[GiftLine]] = relationship(
        back_populates="gift", order_by="GiftLine.position, GiftLine.id",
        cascade="all, delete-orphan", passive_deletes=True)

    @property
    def cost_per_recipient(self) -> Decimal:
        """The sum of the lines' unit prices times quantities."""
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0.00"))


class GiftLine(db.Model):
    """One item of a gift, with its quantity and the unit price when it was added."""

    __tablename__ = "gifts_gift_line"
    __table_args__ = (
        UniqueConstraint("gift_id", "item_id", name="gift_item_once"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    gift_id: Mapped[int] = mapped_column(ForeignKey("gifts_gift.id", ondelete="CASCADE"),
                                         index=True)
    #: NULL once the item is deleted; the name and price stay for the history.
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("gifts_item.id", ondelete="SET NULL"), index=True)
    item_name: Mapped[str] = mapped_column(String(NAME_MAX))
    unit_price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    quantity: Mapped[int] = mapped_column(default=1)
    position: Mapped[int] = mapped_column(default=0)

    gift: Mapped[Gift] = relationship(back_populates="lines")


class ProposalEvent(db.Model):
    """Feedback for the recommender: a proposal shown, an item swapped out, a gift saved/sent."""

    __tablename__ = "gifts_proposal_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_by: Mapped[str | None] = mapped_column(String(64))
    #: shown, swapped_out, locked, saved or sent.
    event: Mapped[str] = mapped_column(String(16))
    brief: Mapped[dict] = mapped_column(JSON, default=dict)
    #: The item ids of each bundle shown, best bundle first.
    bundles: Mapped[list] = mapped_column(JSON, default=list)
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("gifts_item.id", ondelete="SET NULL"))
    gift_id: Mapped[int | None] = mapped_column(
        ForeignKey("gifts_gift.id", ondelete="SET NULL"))
    model_version: Mapped[str | None] = mapped_column(String(64))
