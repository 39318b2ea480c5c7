"""The Merkle tree of RFC 9162 (Certificate Transparency v2) §2.1, kept as stored nodes.

    leaf hash = H(0x00 || data)    node hash = H(0x01 || left || right)    empty tree = H("")

The log stores every complete subtree's hash once, when it completes (`Frontier.append` hands
them over), and never an incomplete one: those change with every append. A proof or an old
root is then made in two steps, so that the store is asked once: `plan_*` names the complete
nodes needed, the caller fetches them in one round trip, `ProofPlan.assemble` folds them into
the RFC's proof (an incomplete subtree's hash from the complete ones it is made of).

Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import chain

from cryptography.hazmat.primitives import hashes

HASH_SIZE = 32
"""Both hashes give 32 bytes; the stored frontier and the verifiers rely on it."""


class TreeHash(StrEnum):
    """The hash function H of a tree. Its value is stored with the tree: never rename one."""

    SM3 = "sm3"  # GB/T 32905, the national commercial hash: the default
    SHA256 = "sha256"  # RFC 6962 / 9162's own, for interoperability and the published vectors

    def digest(self, data: bytes) -> bytes:
        """H(data)."""
        return _DIGESTS[self](data)

    def leaf(self, data: bytes) -> bytes:
        """The hash of a leaf: H(0x00 || data)."""
        return _DIGESTS[self](b"\x00" + data)

    def node(self, left: bytes, right: bytes) -> bytes:
        """The hash of an interior node: H(0x01 || left || right)."""
        return _DIGESTS[self](b"\x01" + left + right)

    def empty_root(self) -> bytes:
        """The root of the tree of no leaves: H("")."""
        return _DIGESTS[self](b"")


# Copying a fresh context is ~0.6 µs cheaper per hash than building one (measured with
# cryptography 50): it matters on the append path, a node hash or two per leaf.
_SM3_CONTEXT = hashes.Hash(hashes.SM3())


def _sm3(data: bytes, _copy: Callable[[], hashes.Hash] = _SM3_CONTEXT.copy) -> bytes:
    context = _copy()
    context.update(data)
    return context.finalize()


def _sha256(data: bytes, _new: Callable[[bytes], hashlib._Hash] = hashlib.sha256) -> bytes:
    return _new(data).digest()


_DIGESTS: dict[TreeHash, Callable[[bytes], bytes]] = {
    TreeHash.SM3: _sm3,
    TreeHash.SHA256: _sha256,
}


@dataclass(frozen=True, slots=True)
class NodeId:
    """The complete subtree over leaves [index * 2**level, (index + 1) * 2**level).

    Level 0 is a leaf (its hash is the leaf hash); level 1 joins two leaves, and so on.
    """

    level: int
    index: int


def _split(n: int) -> int:
    """The largest power of two below n (n >= 2): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtrees(start: int, end: int) -> tuple[NodeId, ...]:
    """The complete subtrees that make up the leaves [start, end), largest first.

    Only for the ranges of the RFC's recursion: start is a multiple of a power of two
    >= end - start, so the subtrees are the bits of the length, and MTH(leaves[start:end])
    is their hashes folded from the right: node(a, node(b, c)).
    """
    nodes = []
    while start < end:
        level = (end - start).bit_length() - 1
        nodes.append(NodeId(level, start >> level))
        start += 1 << level
    return tuple(nodes)


class Frontier:
    """The right edge of a tree of `size` leaves: the roots of its complete subtrees, largest
    first (one per bit set in `size`). All that appending, and the current root, need.
    """

    __slots__ = ("_digest", "_hashes", "_size", "tree_hash")

    def __init__(self, tree_hash: TreeHash = TreeHash.SM3) -> None:
        self.tree_hash = tree_hash
        self._digest = _DIGESTS[tree_hash]
        self._hashes: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The roots of the complete subtrees, largest (leftmost) first."""
        return tuple(self._hashes)

    def append(self, leaf_hash: bytes) -> list[tuple[NodeId, bytes]]:
        """Adds one leaf (its leaf hash, `TreeHash.leaf(data)`).

        Returns every node of level >= 1 that this leaf completes, lowest first, for the
        caller to store; the leaf hash itself (level 0) the caller stores on its own.

        Raises:
            ValueError: `leaf_hash` is not 32 bytes.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf_hash)}")
        digest, stack = self._digest, self._hashes
        completed: list[tuple[NodeId, bytes]] = []
        size, level, index, current = self._size, 0, self._size, leaf_hash
        # Each trailing 1 bit of the old size is a complete subtree that the new leaf's own
        # subtree, of the same size, now joins from the right.
        while size >> level & 1:
            current = digest(b"\x01" + stack.pop() + current)
            level += 1
            index >>= 1
            completed.append((NodeId(level, index), current))
        stack.append(current)
        self._size += 1
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[tuple[NodeId, bytes]]:
        """`append` for each leaf hash in turn; returns all the nodes they complete."""
        completed: list[tuple[NodeId, bytes]] = []
        for leaf_hash in leaf_hashes:
            completed.extend(self.append(leaf_hash))
        return completed

    def root(self) -> bytes:
        """The Merkle tree hash (MTH) of the whole tree; `empty_root()` for no leaves."""
        if not self._hashes:
            return self._digest(b"")
        digest = self._digest
        current = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            current = digest(b"\x01" + left + current)
        return current

    def to_bytes(self) -> bytes:
        """The size (8 bytes, big-endian) followed by the hashes: one database value."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes, tree_hash: TreeHash) -> Frontier:
        """The frontier `to_bytes` gave. The hash is not in the value: the caller names it.

        Raises:
            ValueError: `data` is not a frontier's value (too short, or hashes missing or
                extra for its size).
        """
        if len(data) < 8:
            raise ValueError("a stored frontier starts with its 8-byte size")
        size = int.from_bytes(data[:8], "big")
        count = size.bit_count()
        if len(data) != 8 + count * HASH_SIZE:
            raise ValueError(
                f"a frontier of size {size} holds {count} hashes: "
                f"{8 + count * HASH_SIZE} bytes, not {len(data)}"
            )
        frontier = cls(tree_hash)
        frontier._size = size
        frontier._hashes = [data[i : i + HASH_SIZE] for i in range(8, len(data), HASH_SIZE)]
        return frontier


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """The stored nodes a proof (or root) is made of; `assemble` once they are fetched."""

    parts: tuple[tuple[NodeId, ...], ...]
    """One entry per hash of the result: the complete subtrees that fold into it."""
    nodes: tuple[NodeId, ...] = field(init=False)
    """Every complete node to fetch (level 0 are leaf hashes), each once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(dict.fromkeys(chain.from_iterable(self.parts))))

    def assemble(self, hashes: Mapping[NodeId, bytes], tree_hash: TreeHash) -> list[bytes]:
        """The proof: one hash per part, in the RFC's order.

        Raises:
            KeyError: a node of `nodes` is missing from `hashes`.
        """
        digest = _DIGESTS[tree_hash]
        proof = []
        for part in self.parts:
            if not part:  # only the root of an empty tree
                proof.append(digest(b""))
                continue
            current = hashes[part[-1]]
            for node in reversed(part[:-1]):
                current = digest(b"\x01" + hashes[node] + current)
            proof.append(current)
        return proof


def plan_inclusion(index: int, size: int) -> ProofPlan:
    """The nodes of the inclusion proof of leaf `index` in the tree of `size` leaves
    (RFC 9162 §2.1.3.1, PATH(m, D[n])), nearest the leaf first.

    Raises:
        ValueError: not 0 <= index < size.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    parts = []
    start, end = 0, size
    # PATH descends toward the leaf; each step's sibling is appended after the deeper path.
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            parts.append(_subtrees(middle, end))
            end = middle
        else:
            parts.append(_subtrees(start, middle))
            start = middle
    parts.reverse()
    return ProofPlan(tuple(parts))


def plan_consistency(old_size: int, new_size: int) -> ProofPlan:
    """The nodes of the consistency proof from the tree of `old_size` leaves to the tree of
    `new_size` (RFC 9162 §2.1.4.1, PROOF(m, D[n])). Empty when the sizes are equal.

    Raises:
        ValueError: not 0 < old_size <= new_size (nothing is proved from the empty tree).
    """
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    parts = []
    # SUBPROOF(m, D[start:end], complete), unrolled: m counts old leaves from `start`.
    m, start, end, complete = old_size, 0, new_size, True
    while m != end - start:
        middle = start + _split(end - start)
        if m <= middle - start:
            parts.append(_subtrees(middle, end))
            end = middle
        else:
            parts.append(_subtrees(start, middle))
            m -= middle - start
            start = middle
            complete = False
    if not complete:  # the old tree's root is not itself a node the verifier knows
        parts.append(_subtrees(start, end))
    parts.reverse()
    return ProofPlan(tuple(parts))


def root_plan(size: int) -> ProofPlan:
    """The nodes of the root of the tree of `size` leaves (one part; the root of the empty
    tree needs none), so that a root at an older size can be recomputed.

    Raises:
        ValueError: size < 0.
    """
    if size < 0:
        raise ValueError(f"a tree cannot have {size} leaves")
    return ProofPlan((_subtrees(0, size),))


def verify_inclusion(
    tree_hash: TreeHash,
    leaf_hash: bytes,
    index: int,
    size: int,
    proof: Sequence[bytes],
    root: bytes,
) -> bool:
    """Whether `proof` shows the leaf at `index` in the tree of `size` leaves with `root`
    (RFC 9162 §2.1.3.2). False, never an exception, for any hostile input.
    """
    if not 0 <= index < size or len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        return False
    digest = _DIGESTS[tree_hash]
    fn, sn, current = index, size - 1, leaf_hash
    for sibling in proof:
        if sn == 0 or len(sibling) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            current = digest(b"\x01" + sibling + current)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            current = digest(b"\x01" + current + sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and current == root


def verify_consistency(
    tree_hash: TreeHash,
    old_size: int,
    new_size: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
) -> bool:
    """Whether `proof` shows the tree of `new_size` leaves with `new_root` extends the tree
    of `old_size` with `old_root` (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and
    equal roots; an old size of 0 is refused, as by transparency-dev/merkle: it would accept
    any new root. False, never an exception, for any hostile input.
    """
    if not 0 < old_size <= new_size or len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        return False
    if any(len(item) != HASH_SIZE for item in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # the old root is a node of the new tree
        path.insert(0, old_root)
    digest = _DIGESTS[tree_hash]
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old, new = path[0], path[0]
    for item in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            old = digest(b"\x01" + item + old)
            new = digest(b"\x01" + item + new)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            new = digest(b"\x01" + new + item)
        fn >>= 1
        sn >>= 1
    return sn == 0 and old == old_root and new == new_root


def mth(tree_hash: TreeHash, leaf_datas: Sequence[bytes]) -> bytes:
    """The Merkle tree hash by its recursive definition (RFC 9162 §2.1.1): the oracle of the
    tests. It rehashes every leaf; the log itself uses `Frontier` and the stored nodes.
    """
    n = len(leaf_datas)
    if n == 0:
        return tree_hash.empty_root()
    if n == 1:
        return tree_hash.leaf(leaf_datas[0])
    k = _split(n)
    return tree_hash.node(mth(tree_hash, leaf_datas[:k]), mth(tree_hash, leaf_datas[k:]))
