"""The two suites against the standards' known answers: SM3 (GB/T 32905), HMAC-SM3
(GM/T 0042), SM4 (GB/T 32907) and SM4-GCM (RFC 8998, A.1); and both suites' sealing refuses
a changed byte, a changed context and the other suite's key."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from essc_gateway.keys.suites import AuthenticationFailed, Mac, Suite, aead


def test_sm3_gives_the_standards_digests() -> None:
    for message, expected in [
        (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
        (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
    ]:
        digest = hashes.Hash(hashes.SM3())
        digest.update(message)
        assert digest.finalize().hex() == expected


def test_the_sm_suites_mac_is_hmac_sm3() -> None:
    key = bytes(range(1, 33))
    message = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" * 2
    mac = Mac(Suite.SM4_GCM_HMAC_SM3, key).digest(message)
    assert mac.hex() == "ca05e144ed05d1857840d1f318a4a8669e559fc8391f414485bfdf7bb408963a"


def test_sm4_enciphers_the_standards_block() -> None:
    key = bytes.fromhex("0123456789abcdeffedcba9876543210")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()  # noqa: S305 - a KAT
    assert (encryptor.update(key) + encryptor.finalize()).hex() == (
        "681edf34d206965e86b3e94f536e4246"
    )


def test_sm4_gcm_seals_as_rfc_8998_says() -> None:
    key = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
    nonce = bytes.fromhex("00001234567800000000ABCD")
    associated = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    plaintext = bytes.fromhex(
        "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
        "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
    )
    expected = bytes.fromhex(
        "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
        "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        "83DE3541E4C2B58177E065A9BF7B62EC"
    )
    cipher = aead(Suite.SM4_GCM_HMAC_SM3, key)
    assert cipher.encrypt(nonce, plaintext, associated) == expected
    assert cipher.decrypt(nonce, expected, associated) == plaintext


@pytest.mark.parametrize("suite", list(Suite))
def test_a_sealed_value_opens_only_unchanged_in_its_context_with_its_key(suite: Suite) -> None:
    key, nonce = os.urandom(suite.key_bytes), os.urandom(12)
    cipher = aead(suite, key)
    sealed = cipher.encrypt(nonce, b"110105199003071234", b"cards/e1/id_number")
    assert cipher.decrypt(nonce, sealed, b"cards/e1/id_number") == b"110105199003071234"
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    for attempt in (
        lambda: cipher.decrypt(nonce, flipped, b"cards/e1/id_number"),
        lambda: cipher.decrypt(nonce, sealed, b"cards/e2/id_number"),
        lambda: aead(suite, os.urandom(suite.key_bytes)).decrypt(
            nonce, sealed, b"cards/e1/id_number"
        ),
    ):
        with pytest.raises(AuthenticationFailed):
            attempt()


def test_each_suite_takes_its_own_key_length_and_is_named_in_configuration() -> None:
    assert (Suite.AES256_GCM_HMAC_SHA256.key_bytes, Suite.SM4_GCM_HMAC_SM3.key_bytes) == (32, 16)
    with pytest.raises(ValueError, match="16-byte key"):
        aead(Suite.SM4_GCM_HMAC_SM3, os.urandom(32))
    assert Suite.named("sm") is Suite.named("SM4_GCM_HMAC_SM3") is Suite.SM4_GCM_HMAC_SM3
    assert Suite.named("AES") is Suite.AES256_GCM_HMAC_SHA256
    with pytest.raises(ValueError, match="unknown suite"):
        Suite.named("des")
