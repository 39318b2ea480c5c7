"""Durable state of the gateway behind the `Store` port; adapters never see gRPC or protobuf."""

from essc_gateway.store.base import (
    CardRecord,
    ForwardItem,
    IssueAttempt,
    IssueAttemptState,
    LockoutState,
    Store,
    StoreError,
)

__all__ = [
    "CardRecord",
    "ForwardItem",
    "IssueAttempt",
    "IssueAttemptState",
    "LockoutState",
    "Store",
    "StoreError",
]
