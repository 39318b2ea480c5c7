"""The RFC 9162 Merkle tree: published vectors, then properties against the recursive
definitions of the RFC, written out here independently of the planner."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from essc_gateway.evidence.merkle import (
    Frontier,
    NodeId,
    TreeHash,
    mth,
    plan_consistency,
    plan_inclusion,
    root_plan,
    verify_consistency,
    verify_inclusion,
)

# RFC 6962's test tree, as github.com/transparency-dev/merkle publishes it (testonly/
# constants.go, cmd/proofgen/main.go and testonly/reference_test.go at 417fb0c3).
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
NODE_HASHES = [
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    [
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    [
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    ["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
]
ROOTS = [  # by tree size, from 0
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
INCLUSION_PROOFS = [  # (leaf index from 0, tree size, proof)
    (0, 1, []),
    (0, 2, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"]),
    (1, 2, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CONSISTENCY_PROOFS = [  # (old size, new size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
SHA256 = TreeHash.SHA256


def _hashes(hexes: Sequence[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


def build(tree_hash: TreeHash, leaf_datas: Sequence[bytes]) -> tuple[Frontier, dict[NodeId, bytes]]:
    """A frontier over the leaves, and the store of every complete node, as a log keeps it."""
    frontier = Frontier(tree_hash)
    store: dict[NodeId, bytes] = {}
    for index, data in enumerate(leaf_datas):
        leaf_hash = tree_hash.leaf(data)
        store[NodeId(0, index)] = leaf_hash
        store.update(frontier.append(leaf_hash))
    return frontier, store


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_path(tree_hash: TreeHash, m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 §2.1.3.1, word for word."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*reference_path(tree_hash, m, leaves[:k]), mth(tree_hash, leaves[k:])]
    return [*reference_path(tree_hash, m - k, leaves[k:]), mth(tree_hash, leaves[:k])]


def reference_subproof(
    tree_hash: TreeHash, m: int, leaves: Sequence[bytes], complete: bool
) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1, word for word."""
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(tree_hash, leaves)]
    k = _split(n)
    if m <= k:
        return [*reference_subproof(tree_hash, m, leaves[:k], complete), mth(tree_hash, leaves[k:])]
    return [*reference_subproof(tree_hash, m - k, leaves[k:], False), mth(tree_hash, leaves[:k])]


def flip(proof: list[bytes], item: int, byte: int) -> list[bytes]:
    changed = bytearray(proof[item])
    changed[byte % len(changed)] ^= 0x10
    return [*proof[:item], bytes(changed), *proof[item + 1 :]]


# Known answers.


def test_sm3_known_answers() -> None:
    # GB/T 32905-2016, appendix A, examples 1 and 2.
    assert TreeHash.SM3.digest(b"abc") == bytes.fromhex(
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    )
    assert TreeHash.SM3.digest(b"abcd" * 16) == bytes.fromhex(
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    )


@pytest.mark.parametrize("tree_hash", list(TreeHash))
def test_leaf_node_and_empty_root_are_the_rfc_definitions(tree_hash: TreeHash) -> None:
    assert tree_hash.empty_root() == tree_hash.digest(b"")
    assert tree_hash.leaf(b"x") == tree_hash.digest(b"\x00x")
    assert tree_hash.node(b"l", b"r") == tree_hash.digest(b"\x01lr")
    assert TreeHash("sm3") is TreeHash.SM3


@pytest.mark.parametrize("size", range(9))
def test_roots_of_the_rfc6962_tree(size: int) -> None:
    frontier, store = build(SHA256, LEAVES[:size])
    expected = bytes.fromhex(ROOTS[size])
    assert frontier.root() == expected
    assert mth(SHA256, LEAVES[:size]) == expected
    assert root_plan(size).assemble(store, SHA256) == [expected]


def test_the_store_holds_the_published_node_hashes() -> None:
    _, store = build(SHA256, LEAVES)
    expected = {
        NodeId(level, index): bytes.fromhex(h)
        for level, row in enumerate(NODE_HASHES)
        for index, h in enumerate(row)
    }
    assert store == expected


def test_frontier_is_the_published_compact_range() -> None:
    # CompactTrees() of transparency-dev/merkle: the complete subtrees' roots, largest first.
    n = [_hashes(row) for row in NODE_HASHES]
    expected = [
        [],
        [n[0][0]],
        [n[1][0]],
        [n[1][0], n[0][2]],
        [n[2][0]],
        [n[2][0], n[0][4]],
        [n[2][0], n[1][2]],
        [n[2][0], n[1][2], n[0][6]],
        [n[3][0]],
    ]
    for size in range(9):
        frontier, _ = build(SHA256, LEAVES[:size])
        assert list(frontier.hashes) == expected[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_published_inclusion_proofs(index: int, size: int, proof: list[str]) -> None:
    _, store = build(SHA256, LEAVES[:size])
    expected = _hashes(proof)
    assert plan_inclusion(index, size).assemble(store, SHA256) == expected
    leaf_hash = SHA256.leaf(LEAVES[index])
    root = bytes.fromhex(ROOTS[size])
    assert verify_inclusion(SHA256, leaf_hash, index, size, expected, root)


def _corrupted_inclusions(
    index: int, size: int, proof: list[bytes], root: bytes, leaf_hash: bytes
) -> list[tuple[int, int, list[bytes], bytes, bytes]]:
    """The corruptions of transparency-dev/merkle's proofgen (invalidInclusionProof)."""
    cases = [
        (index - 1, size, proof, root, leaf_hash),
        (index + 1, size, proof, root, leaf_hash),
        (index ^ 2, size, proof, root, leaf_hash),
        (index, size * 2, proof, root, leaf_hash),
        (index, size // 2, proof, root, leaf_hash),
        (index, size, proof, root, b"WrongLeaf"),
        (index, size, proof, SHA256.empty_root(), leaf_hash),
        (index, size, proof, SOME_HASH, leaf_hash),
        (index, size, [*proof, b""], root, leaf_hash),
        (index, size, [*proof, root], root, leaf_hash),
        (index, size, [b"", *proof], root, leaf_hash),
        (index, size, [root, *proof], root, leaf_hash),
    ]
    cases += [(index, size, flip(proof, i, 0), root, leaf_hash) for i in range(len(proof))]
    if proof:
        cases.append((index, size, proof[:-1], root, leaf_hash))
    if len(proof) > 1:
        cases.append((index, size, [proof[0], SOME_HASH, *proof[1:]], root, leaf_hash))
    return cases


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS)
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof: list[str]) -> None:
    root, leaf_hash = bytes.fromhex(ROOTS[size]), SHA256.leaf(LEAVES[index])
    for i, s, p, r, leaf in _corrupted_inclusions(index, size, _hashes(proof), root, leaf_hash):
        assert not verify_inclusion(SHA256, leaf, i, s, p, r), (i, s, len(p))


@pytest.mark.parametrize(
    ("index", "size", "root", "leaf_hash"),
    [
        # proofgen's static and single-entry probes: nothing to prove, or a bad hash size.
        (0, 0, b"", SOME_HASH),
        (0, 0, SHA256.empty_root(), b""),
        (1, 0, SHA256.empty_root(), SOME_HASH),
        (2, 1, SHA256.empty_root(), SOME_HASH),
        (0, 1, SHA256.empty_root(), SHA256.leaf(LEAVES[0])),
        (0, 1, SHA256.leaf(b"data"), b""),
        (0, 1, b"", SHA256.leaf(b"data")),
    ],
)
def test_degenerate_inclusions_fail(index: int, size: int, root: bytes, leaf_hash: bytes) -> None:
    assert not verify_inclusion(SHA256, leaf_hash, index, size, [], root)


def test_a_single_leaf_is_its_own_root() -> None:
    leaf_hash = SHA256.leaf(b"data")
    assert verify_inclusion(SHA256, leaf_hash, 0, 1, [], leaf_hash)


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_PROOFS)
def test_published_consistency_proofs(old: int, new: int, proof: list[str]) -> None:
    _, store = build(SHA256, LEAVES[:new])
    expected = _hashes(proof)
    assert plan_consistency(old, new).assemble(store, SHA256) == expected
    old_root, new_root = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    assert verify_consistency(SHA256, old, new, expected, old_root, new_root)


@pytest.mark.parametrize(("old", "new", "proof"), [c for c in CONSISTENCY_PROOFS if c[2]])
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof: list[str]) -> None:
    # The corruptions of transparency-dev/merkle's proofgen (invalidConsistencyProof).
    p = _hashes(proof)
    r1, r2 = bytes.fromhex(ROOTS[old]), bytes.fromhex(ROOTS[new])
    cases = [
        (old - 1, new, r1, r2, p),
        (old + 1, new, r1, r2, p),
        (old ^ 2, new, r1, r2, p),
        (old, new * 2, r1, r2, p),
        (old, new // 2, r1, r2, p),
        (old, new, b"WrongRoot", r2, p),
        (old, new, r1, b"WrongRoot", p),
        (old, new, r2, r1, p),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*p, b""]),
        (old, new, r1, r2, [*p, r1]),
        (old, new, r1, r2, [*p, r2]),
        (old, new, r1, r2, [b"", *p]),
        (old, new, r1, r2, [r1, *p]),
        (old, new, r1, r2, [r2, *p]),
        (old, new, r1, r2, [p[0], *p]),
        (old, new, r1, r2, p[:-1]),
    ]
    cases += [(old, new, r1, r2, flip(p, i, 0)) for i in range(len(p))]
    for m, n, a, b, q in cases:
        assert not verify_consistency(SHA256, m, n, q, a, b), (m, n, len(q))


A, B, EMPTY = b"\xaa" * 32, b"\xbb" * 32, SHA256.empty_root()


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof", "valid"),
    [
        # transparency-dev/merkle testdata/consistency/additional, with 32-byte stand-ins
        # for its 12-byte "don't care" roots (a hash of another size is refused here).
        (0, 1, EMPTY, EMPTY, [EMPTY], False),
        (0, 0, EMPTY, B, [], False),
        (1, 1, EMPTY, B, [], False),
        (2, 1, A, B, [], False),
        (1, 0, A, B, [], False),
        (0, 1, A, B, [], False),
        (0, 1, EMPTY, B, [], False),
        (1, 1, B, B, [], True),
        (1, 1, A, B, [], False),
        (0, 0, A, A, [], False),
        (0, 0, A, B, [], False),
        (1, 2, A, B, [], False),
        (1, 1, EMPTY, EMPTY, [EMPTY], False),
        (0, 0, EMPTY, EMPTY, [EMPTY], False),
    ],
)
def test_degenerate_consistency_proofs(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes], valid: bool
) -> None:
    assert verify_consistency(SHA256, old, new, proof, old_root, new_root) is valid


# Plans: arguments, and the size of a proof in a large tree.


@pytest.mark.parametrize(("index", "size"), [(0, 0), (5, 5), (6, 5), (-1, 5), (0, -1)])
def test_an_inclusion_plan_needs_a_leaf_of_the_tree(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="is not in a tree"):
        plan_inclusion(index, size)


@pytest.mark.parametrize(("old", "new"), [(0, 0), (0, 5), (6, 5), (-1, 5), (1, -1)])
def test_a_consistency_plan_needs_0_lt_old_le_new(old: int, new: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        plan_consistency(old, new)


def test_a_root_plan_needs_a_size() -> None:
    with pytest.raises(ValueError, match="cannot have -1 leaves"):
        root_plan(-1)
    assert root_plan(0).nodes == ()
    assert root_plan(0).assemble({}, SHA256) == [SHA256.empty_root()]


def _inside(node: NodeId, size: int) -> bool:
    return node.level >= 0 and node.index >= 0 and (node.index + 1) << node.level <= size


def test_a_proof_in_ten_million_leaves_needs_few_nodes() -> None:
    size = 10_000_000
    plan = plan_inclusion(7_654_321, size)
    assert len(plan.parts) == 24  # ceil(log2(size)): one hash per level
    assert len(plan.nodes) <= 2 * size.bit_length()
    assert all(_inside(node, size) for node in plan.nodes)
    consistency = plan_consistency(6_543_210, size)
    assert len(consistency.nodes) <= 3 * size.bit_length()
    assert len(root_plan(size).nodes) == size.bit_count()


@given(st.integers(min_value=1, max_value=2**48), st.data())
def test_plans_name_few_complete_nodes_of_the_tree(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=1, max_value=size))
    for plan in (plan_inclusion(index, size), plan_consistency(old, size), root_plan(size)):
        assert len(plan.nodes) == len(set(plan.nodes))
        assert len(plan.nodes) <= 3 * size.bit_length()
        # Only nodes complete at `size` exist in the store when the proof is asked.
        assert all(_inside(node, size) for node in plan.nodes)
        assert all(part for part in plan.parts)


# Properties over trees of up to ~300 leaves, against the RFC's recursive definitions.


@st.composite
def trees(draw: st.DrawFn, min_size: int = 1, max_size: int = 300) -> list[bytes]:
    size = draw(st.integers(min_value=min_size, max_value=max_size))
    salt = draw(st.binary(max_size=8))
    return [salt + index.to_bytes(2, "big") for index in range(size)]


tree_hashes = st.sampled_from(list(TreeHash))


def test_every_proof_of_every_small_tree() -> None:
    # Exhaustive where the edge cases are: every size up to 40 crosses 1, 2, 4 ... 32.
    leaves = [index.to_bytes(2, "big") for index in range(40)]
    _, store = build(SHA256, leaves)
    roots = [mth(SHA256, leaves[:size]) for size in range(41)]
    for size in range(1, 41):
        prefix = leaves[:size]
        assert root_plan(size).assemble(store, SHA256) == [roots[size]]
        for index in range(size):
            proof = plan_inclusion(index, size).assemble(store, SHA256)
            assert proof == reference_path(SHA256, index, prefix)
            leaf_hash = SHA256.leaf(leaves[index])
            assert verify_inclusion(SHA256, leaf_hash, index, size, proof, roots[size])
        for old in range(1, size + 1):
            proof = plan_consistency(old, size).assemble(store, SHA256)
            assert proof == reference_subproof(SHA256, old, prefix, True)
            assert verify_consistency(SHA256, old, size, proof, roots[old], roots[size])


@given(tree_hashes, trees(), st.data())
def test_every_inclusion_proof_is_the_rfcs_and_verifies(
    tree_hash: TreeHash, leaves: list[bytes], data: st.DataObject
) -> None:
    size = len(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    _, store = build(tree_hash, leaves)
    proof = plan_inclusion(index, size).assemble(store, tree_hash)
    assert proof == reference_path(tree_hash, index, leaves)
    root, leaf_hash = mth(tree_hash, leaves), tree_hash.leaf(leaves[index])
    assert verify_inclusion(tree_hash, leaf_hash, index, size, proof, root)

    other = data.draw(st.binary(min_size=1, max_size=4))
    assert not verify_inclusion(
        tree_hash, tree_hash.leaf(leaves[index] + other), index, size, proof, root
    )
    if proof:
        item = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        byte = data.draw(st.integers(min_value=0, max_value=31))
        assert not verify_inclusion(
            tree_hash, leaf_hash, index, size, flip(proof, item, byte), root
        )
        assert not verify_inclusion(tree_hash, leaf_hash, index, size, proof[:-1], root)
    if size > 1:
        elsewhere = (index + data.draw(st.integers(min_value=1, max_value=size - 1))) % size
        assert not verify_inclusion(tree_hash, leaf_hash, elsewhere, size, proof, root)


@given(tree_hashes, trees(), st.data())
def test_every_consistency_proof_is_the_rfcs_and_verifies(
    tree_hash: TreeHash, leaves: list[bytes], data: st.DataObject
) -> None:
    new = len(leaves)
    old = data.draw(st.integers(min_value=1, max_value=new))
    _, store = build(tree_hash, leaves)
    proof = plan_consistency(old, new).assemble(store, tree_hash)
    assert proof == reference_subproof(tree_hash, old, leaves, True)
    old_root, new_root = mth(tree_hash, leaves[:old]), mth(tree_hash, leaves)
    assert verify_consistency(tree_hash, old, new, proof, old_root, new_root)

    changed = bytearray(old_root)
    changed[data.draw(st.integers(min_value=0, max_value=31))] ^= 1
    assert not verify_consistency(tree_hash, old, new, proof, bytes(changed), new_root)
    if proof:
        item = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        byte = data.draw(st.integers(min_value=0, max_value=31))
        assert not verify_consistency(
            tree_hash, old, new, flip(proof, item, byte), old_root, new_root
        )
        # A tree whose old part differs: its own proof does not link it to this new root.
        forged = [*leaves[: old - 1], leaves[old - 1] + b"!"]
        forged_root = mth(tree_hash, forged)
        assert not verify_consistency(tree_hash, old, new, proof, forged_root, new_root)


@given(tree_hashes, trees(min_size=0), st.data())
def test_old_roots_are_recomputed_from_the_store(
    tree_hash: TreeHash, leaves: list[bytes], data: st.DataObject
) -> None:
    _, store = build(tree_hash, leaves)
    old = data.draw(st.integers(min_value=0, max_value=len(leaves)))
    assert root_plan(old).assemble(store, tree_hash) == [mth(tree_hash, leaves[:old])]


@settings(max_examples=4)
@given(tree_hashes, st.binary(max_size=8))
def test_frontier_root_and_nodes_after_every_append(tree_hash: TreeHash, salt: bytes) -> None:
    leaves = [salt + index.to_bytes(2, "big") for index in range(300)]
    frontier = Frontier(tree_hash)
    assert frontier.root() == tree_hash.empty_root()
    completed = 0
    for size, data in enumerate(leaves, 1):
        for node, node_hash in frontier.append(tree_hash.leaf(data)):
            assert node.level >= 1
            start, end = node.index << node.level, (node.index + 1) << node.level
            assert end == size  # a node completes with its last leaf
            assert node_hash == mth(tree_hash, leaves[start:end])
            completed += 1
        assert frontier.size == size
        assert frontier.root() == mth(tree_hash, leaves[:size])
        assert completed == size - size.bit_count()  # every complete node, once


@given(tree_hashes, trees(min_size=0), st.integers(min_value=0, max_value=40))
def test_frontier_round_trips_through_bytes(
    tree_hash: TreeHash, leaves: list[bytes], more: int
) -> None:
    frontier, _ = build(tree_hash, leaves)
    value = frontier.to_bytes()
    assert len(value) == 8 + 32 * len(leaves).bit_count()
    assert value[:8] == len(leaves).to_bytes(8, "big")
    restored = Frontier.from_bytes(value, tree_hash)
    assert restored.size == frontier.size
    assert restored.hashes == frontier.hashes
    assert restored.root() == frontier.root()
    extra = [tree_hash.leaf(b"more" + bytes([i])) for i in range(more)]
    assert restored.extend(extra) == frontier.extend(extra)
    assert restored.to_bytes() == frontier.to_bytes()


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x00" * 7,
        (1).to_bytes(8, "big"),
        (1).to_bytes(8, "big") + b"\x00" * 31,
        (1).to_bytes(8, "big") + b"\x00" * 33,
        (0).to_bytes(8, "big") + b"\x00" * 32,
        (3).to_bytes(8, "big") + b"\x00" * 32,
        (2**64 - 1).to_bytes(8, "big") + b"\x00" * 32,
    ],
)
def test_a_malformed_stored_frontier_is_refused(value: bytes) -> None:
    with pytest.raises(ValueError, match="frontier"):
        Frontier.from_bytes(value, TreeHash.SM3)


@pytest.mark.parametrize("leaf_hash", [b"", b"\x00" * 31, b"\x00" * 33])
def test_append_refuses_a_leaf_hash_of_another_size(leaf_hash: bytes) -> None:
    frontier = Frontier()
    with pytest.raises(ValueError, match="32 bytes"):
        frontier.append(leaf_hash)
    assert frontier.size == 0
    assert frontier.tree_hash is TreeHash.SM3


hostile_sizes = st.integers(min_value=-3, max_value=2**70)
hostile_hashes = st.binary(max_size=40)


@given(
    tree_hashes,
    hostile_hashes,
    hostile_sizes,
    hostile_sizes,
    st.lists(hostile_hashes),
    hostile_hashes,
)
def test_verify_inclusion_never_raises(
    tree_hash: TreeHash, leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> None:
    assert verify_inclusion(tree_hash, leaf, index, size, proof, root) in (True, False)


@given(
    tree_hashes,
    hostile_sizes,
    hostile_sizes,
    st.lists(hostile_hashes),
    hostile_hashes,
    hostile_hashes,
)
def test_verify_consistency_never_raises(
    tree_hash: TreeHash, old: int, new: int, proof: list[bytes], old_root: bytes, new_root: bytes
) -> None:
    assert verify_consistency(tree_hash, old, new, proof, old_root, new_root) in (True, False)


def test_a_missing_node_is_a_key_error() -> None:
    _, store = build(SHA256, LEAVES)
    del store[NodeId(1, 1)]
    with pytest.raises(KeyError):
        plan_inclusion(0, 8).assemble(store, SHA256)
