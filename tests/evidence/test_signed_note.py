"""Signed notes and checkpoints: the known answers of golang.org/x/mod/sumdb/note and of the
C2SP specifications, then hostile input."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from essc_gateway.evidence.signed_note import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
)

# golang.org/x/mod sumdb/note/note_test.go (at fe2ec04f): TestNewVerifier, TestSign, TestOpen.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotp"
    "RZb6KE6RyyBwJnAM=\n"
).encode()
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox3"
    "3WWd1RvMc+QQ=\n"
).encode()
PETER_NOTE = TEXT + b"\n" + PETER_SIG

# c2sp.org/signed-note, "Verifier keys: Example" (C2SP/C2SP at 5ba5ee83).
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXm"
    "RKuwHjG1Yu72IneyaQM=\n"
).encode()

# c2sp.org/tlog-checkpoint, the example's note text.
C2SP_CHECKPOINT = (
    b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def peter_key() -> Ed25519PrivateKey:
    # Go's private key string: "PRIVATE+KEY+<name>+<key ID>+base64(0x01 || 32-byte seed)".
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    return Ed25519PrivateKey.from_private_bytes(seed)


@pytest.fixture
def peter() -> NoteVerifier:
    return NoteVerifier.from_verifier_key(PETER_VKEY)


# Known answers.


def test_the_signer_reproduces_gos_note() -> None:
    signer = NoteSigner("PeterNeumann", peter_key())
    assert signer.key_id == bytes.fromhex("c74f20a3")
    assert signer.verifier_key() == PETER_VKEY
    assert signer.sign(TEXT) == PETER_NOTE  # Ed25519 is deterministic


def test_the_verifier_opens_gos_note(peter: NoteVerifier) -> None:
    assert peter.name == "PeterNeumann"
    assert peter.key_id == bytes.fromhex("c74f20a3")
    assert peter.open(PETER_NOTE) == TEXT


def test_a_note_signed_by_two_keys_opens_with_either() -> None:
    note = TEXT + b"\n" + PETER_SIG + ENOCH_SIG
    assert NoteVerifier.from_verifier_key(PETER_VKEY).open(note) == TEXT
    assert NoteVerifier.from_verifier_key(ENOCH_VKEY).open(note) == TEXT


def test_the_c2sp_example_note_opens() -> None:
    verifier = NoteVerifier.from_verifier_key(C2SP_VKEY)
    assert verifier.open(C2SP_NOTE) == b"This is an example message.\n"


def test_the_c2sp_example_checkpoint_parses() -> None:
    checkpoint = Checkpoint.parse(C2SP_CHECKPOINT)
    assert checkpoint == Checkpoint(
        "example.com/behind-the-sofa",
        20852163,
        base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    assert checkpoint.body() == C2SP_CHECKPOINT


def test_a_signer_from_pem_signs_the_same() -> None:
    pem = peter_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = NoteSigner.from_private_pem("PeterNeumann", pem)
    assert signer.sign(TEXT) == PETER_NOTE
    assert signer.verifier().open(PETER_NOTE) == TEXT


def test_a_pem_of_another_algorithm_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="Ed25519"):
        NoteSigner.from_private_pem("log", pem)


# Verifier keys.


def test_every_mangling_of_gos_verifier_key_is_refused() -> None:
    # As TestNewVerifier: every proper substring, and every character moved by one.
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteError):
                    NoteVerifier.from_verifier_key(PETER_VKEY[i:j])
    for i, char in enumerate(PETER_VKEY):
        with pytest.raises(NoteError):
            NoteVerifier.from_verifier_key(
                PETER_VKEY[:i] + chr(ord(char) + 1) + PETER_VKEY[i + 1 :]
            )


def _with_key_id(name: str, typed_key: bytes) -> str:
    """A verifier key whose key ID matches, whatever the key: to reach the checks after it."""
    key_id = hashlib.sha256(name.encode() + b"\n" + typed_key).hexdigest()[:8]
    return f"{name}+{key_id}+{base64.b64encode(typed_key).decode()}"


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        # TestNewVerifier's two keys with a matching key ID but a bad key. Go reads the
        # first as a key of 38 bytes; here it fails earlier: its last "Y" has low bits set.
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "not canonical base64",
        ),
        (
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "unknown signature type 0x65",
        ),
        (_with_key_id("PeterNeumann", b"\x01" + b"\x00" * 31), "an Ed25519 key is 32 bytes"),
        (_with_key_id("PeterNeumann", b"\x01" + b"\x00" * 33), "an Ed25519 key is 32 bytes"),
        (_with_key_id("PeterNeumann", b"\x01"), "an Ed25519 key is 32 bytes"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key ID"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW", "base64"),
        ("PeterNeumann+c74f20a3+", "base64"),
        ("PeterNeumann+c74f20a3", r"not <name>\+<key ID>\+<key>"),
        ("", r"not <name>\+<key ID>\+<key>"),
    ],
)
def test_bad_verifier_keys_say_what_is_wrong(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        NoteVerifier.from_verifier_key(vkey)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u3000b", "a\x01b"])
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(NoteError, match="key name"):
        NoteSigner(name, peter_key())
    with pytest.raises(NoteError, match="key name"):
        NoteVerifier(name, peter_key().public_key())


# Opening hostile notes: only NoteError, saying what failed.


@pytest.mark.parametrize(
    ("note", "message"),
    [
        # TestOpen's badMsgs, in its order.
        (TEXT, "no blank line"),
        (TEXT + b"\n", "no signature line"),
        (TEXT + b"\n" + PETER_SIG[:-1], "no final newline"),
        (b"\x01" + PETER_NOTE, "control character"),
        (b"\xff" + PETER_NOTE, "not valid UTF-8"),
        (TEXT + b"\n" + PETER_SIG.replace(b"PeterNeumann", b"Bad Name")[:-1], "no final newline"),
        (TEXT + b"\n" + PETER_SIG.replace(b"PeterNeumann", b"Bad Name"), "signature line 1"),
        (PETER_NOTE + b"Unexpected line.\n", "signature line 2 does not start with"),
        (TEXT + b"\n" + PETER_SIG.replace("—".encode(), b"-"), "does not start with"),
        (TEXT + b"\n" + PETER_SIG.replace(b"=\n", b"\n"), "signature line 1 is not"),
        (TEXT + b"\n" + PETER_SIG.replace(b"AM=", b"AN="), "signature line 1 is not"),
        (TEXT + b"\n" + "— PeterNeumann AAAA\n".encode(), "signature line 1 is not"),
        (TEXT + b"\r\n" + PETER_SIG, "control character"),
        (TEXT + b"\n" + PETER_SIG * (MAX_SIGNATURES + 1), "more than 100 signatures"),
    ],
)
def test_malformed_notes_say_what_is_wrong(peter: NoteVerifier, note: bytes, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        peter.open(note)


def test_a_note_of_many_signatures_opens(peter: NoteVerifier) -> None:
    assert peter.open(TEXT + b"\n" + (ENOCH_SIG + PETER_SIG) * (MAX_SIGNATURES // 2)) == TEXT


def test_a_bad_signature_is_named(peter: NoteVerifier) -> None:
    # TestOpen's "Invalid signature": four base64 characters inserted in the signature.
    split = len(TEXT) + 1 + 60
    with pytest.raises(NoteError, match=r"^bad signature by key PeterNeumann\+c74f20a3$"):
        peter.open(PETER_NOTE[:split] + b"ABCD" + PETER_NOTE[split:])


def test_a_changed_text_is_a_bad_signature(peter: NoteVerifier) -> None:
    with pytest.raises(NoteError, match="bad signature by key PeterNeumann"):
        peter.open(PETER_NOTE.replace(b"cryptography", b"cryptograph!"))


def test_one_bad_signature_rejects_the_note(peter: NoteVerifier) -> None:
    bad = PETER_SIG.replace(b"x08go/ZJ", b"x08go/ZK")
    with pytest.raises(NoteError, match="bad signature"):
        peter.open(TEXT + b"\n" + PETER_SIG + bad)


def test_a_note_by_other_keys_only(peter: NoteVerifier) -> None:
    with pytest.raises(NoteError, match=r"no signature by key PeterNeumann\+c74f20a3 \(1 by"):
        peter.open(TEXT + b"\n" + ENOCH_SIG)
    # TestOpen's misnamed signature: the same key ID under another name is another key.
    misnamed = PETER_NOTE.replace(b"PeterNeumann", b"CarmenSandiego")
    with pytest.raises(NoteError, match="no signature by key PeterNeumann"):
        peter.open(misnamed)


def test_a_wrong_key_id_is_named(peter: NoteVerifier) -> None:
    # TestOpen's wrongHash: the first base64 characters, of the key ID, changed.
    with pytest.raises(NoteError, match="wrong key ID: signed as PeterNeumann with key ID c7"):
        peter.open(PETER_NOTE.replace(b"x08g", b"xxxx"))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_open_and_never_crash(note: bytes) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_verifier_key(PETER_VKEY).open(note)


@given(st.integers(min_value=0, max_value=len(PETER_NOTE) - 1), st.integers(1, 255), st.data())
def test_every_one_byte_change_of_the_note_is_refused(
    position: int, delta: int, data: st.DataObject
) -> None:
    verifier = NoteVerifier.from_verifier_key(PETER_VKEY)
    changed = bytearray(PETER_NOTE)
    changed[position] = (changed[position] + delta) % 256
    inserted = PETER_NOTE[:position] + bytes([delta]) + PETER_NOTE[position:]
    deleted = PETER_NOTE[:position] + PETER_NOTE[position + 1 :]
    for note in (bytes(changed), inserted, deleted):
        with pytest.raises(NoteError):
            verifier.open(note)


@given(st.text(max_size=120))
def test_arbitrary_verifier_keys_never_crash(vkey: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_verifier_key(vkey)


# Signing.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"no final newline", "end with a newline"),
        (b"\xff\n", "valid UTF-8"),
        (b"tab\there\n", "control characters"),
    ],
)
def test_texts_that_could_not_be_read_back_are_not_signed(text: bytes, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        NoteSigner("log", peter_key()).sign(text)


@given(st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"])), st.booleans())
def test_every_signed_text_opens(line: str, blank_lines: bool) -> None:
    text = (line + "\n" + ("\n" if blank_lines else "") + "end\n").encode()
    signer = NoteSigner("example.com/log", peter_key())
    assert NoteVerifier.from_verifier_key(signer.verifier_key()).open(signer.sign(text)) == text


# Checkpoints.


def test_a_signed_checkpoint_opens() -> None:
    signer = NoteSigner("example.com/evidence", peter_key())
    checkpoint = Checkpoint("example.com/evidence", 10, b"\x01" * 32, ("ext one",))
    note = signer.sign(checkpoint.body())
    assert note.startswith(
        b"example.com/evidence\n10\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"
    )
    verifier = signer.verifier()
    assert verifier.open_checkpoint(note) == checkpoint
    assert verifier.open_checkpoint(note, origin="example.com/evidence") == checkpoint
    with pytest.raises(NoteError, match=r"another origin than 'example\.com/other'"):
        verifier.open_checkpoint(note, origin="example.com/other")
    with pytest.raises(NoteError, match="needs an origin, a size and a root"):
        verifier.open_checkpoint(signer.sign(b"not a checkpoint\n"))


@given(
    st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.binary(min_size=1, max_size=64),
    st.lists(st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]), min_size=1)),
)
def test_checkpoints_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"origin\n1\n", "needs an origin, a size and a root"),
        (b"origin\n1\nAAAA", "end with a newline"),
        (b"origin\n01\nAAAA\n", "without leading zeros"),
        (b"origin\n+1\nAAAA\n", "without leading zeros"),
        (b"origin\n 1\nAAAA\n", "without leading zeros"),
        (b"origin\n-0\nAAAA\n", "without leading zeros"),
        ("origin\n١\nAAAA\n".encode(), "without leading zeros"),  # an Arabic-Indic one
        (b"origin\n18446744073709551616\nAAAA\n", "64-bit"),
        (b"origin\n1" + b"0" * 5000 + b"\nAAAA\n", "without leading zeros"),
        (b"origin\n1\nAAB=\n", "canonical base64"),
        (b"origin\n1\nAAA\n", "canonical base64"),
        (b"origin\n1\n\n", "root hash must not be empty"),
        (b"\n1\nAAAA\n", "origin must not be empty"),
        (b"origin\n1\nAAAA\n\n", "non-empty"),
        (b"ori\x01gin\n1\nAAAA\n", "without controls"),
        (b"origin\xff\n1\nAAAA\n", "UTF-8"),
    ],
)
def test_malformed_checkpoints_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Checkpoint.parse(body)


@given(st.binary(max_size=200))
def test_arbitrary_checkpoint_bodies_never_crash(body: bytes) -> None:
    try:
        checkpoint = Checkpoint.parse(body)
    except NoteError:
        return
    assert checkpoint.body() == body
