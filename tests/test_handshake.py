"""The socket handshake as pure functions: bytes in, bytes out, no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execnet_cli._remote import handshake as hs

SECRET = b"correct horse battery staple"
OTHER = b"incorrect horse battery staple"


def run_handshake(server_secret: bytes, client_secret: bytes) -> bytes:
    """One full exchange; returns the magic the client learns (or raises)."""
    server_nonce = hs.new_nonce()
    hello = hs.server_hello(server_nonce)
    assert len(hello) == hs.SERVER_HELLO_SIZE
    seen_nonce = hs.parse_server_hello(hello)
    client_nonce = hs.new_nonce()
    proof = hs.client_proof(client_secret, seen_nonce, client_nonce)
    assert len(proof) == hs.CLIENT_PROOF_SIZE
    got_nonce = hs.check_client_proof(server_secret, server_nonce, proof)
    verdict = hs.accept_verdict(server_secret, server_nonce, got_nonce, b"MAGI")
    assert len(verdict) == hs.VERDICT_SIZE
    return hs.check_verdict(client_secret, seen_nonce, client_nonce, verdict)


def test_round_trip_yields_the_servers_magic():
    assert run_handshake(SECRET, SECRET) == b"MAGI"


def test_wrong_client_secret_is_detected_by_the_server():
    with pytest.raises(hs.SecretMismatch):
        run_handshake(SECRET, OTHER)


def test_client_detects_a_server_without_the_secret():
    server_nonce, client_nonce = hs.new_nonce(), hs.new_nonce()
    verdict = hs.accept_verdict(OTHER, server_nonce, client_nonce, b"MAGI")
    with pytest.raises(hs.SecretMismatch):
        hs.check_verdict(SECRET, server_nonce, client_nonce, verdict)


def test_refusal_is_reported_as_such():
    with pytest.raises(hs.Refused):
        hs.check_verdict(SECRET, hs.new_nonce(), hs.new_nonce(), hs.refuse_verdict())
    assert len(hs.refuse_verdict()) == hs.VERDICT_SIZE


def test_recorded_proof_fails_against_a_fresh_server_nonce():
    old_nonce = hs.new_nonce()
    recorded = hs.client_proof(SECRET, old_nonce, hs.new_nonce())
    assert hs.check_client_proof(SECRET, old_nonce, recorded)  # valid once...
    with pytest.raises(hs.SecretMismatch):
        hs.check_client_proof(SECRET, hs.new_nonce(), recorded)  # ...never again


def test_recorded_acceptance_fails_against_a_fresh_client_nonce():
    server_nonce = hs.new_nonce()
    recorded = hs.accept_verdict(SECRET, server_nonce, hs.new_nonce(), b"MAGI")
    with pytest.raises(hs.SecretMismatch):
        hs.check_verdict(SECRET, server_nonce, hs.new_nonce(), recorded)


def test_client_mac_cannot_be_reflected_as_the_servers():
    server_nonce, client_nonce = hs.new_nonce(), hs.new_nonce()
    client_mac = hs.compute_mac(SECRET, b"client", server_nonce, client_nonce, b"MAGI")
    forged = hs.TAG + b"A" + b"MAGI" + client_mac
    with pytest.raises(hs.SecretMismatch):
        hs.check_verdict(SECRET, server_nonce, client_nonce, forged)


def test_tampered_magic_is_detected():
    server_nonce, client_nonce = hs.new_nonce(), hs.new_nonce()
    verdict = bytearray(hs.accept_verdict(SECRET, server_nonce, client_nonce, b"MAGI"))
    verdict[len(hs.TAG) + 1] ^= 1
    with pytest.raises(hs.SecretMismatch):
        hs.check_verdict(SECRET, server_nonce, client_nonce, bytes(verdict))


def test_mac_binds_role_and_nonce_order():
    a, b = hs.new_nonce(), hs.new_nonce()
    macs = {
        hs.compute_mac(SECRET, b"client", a, b),
        hs.compute_mac(SECRET, b"server", a, b),
        hs.compute_mac(SECRET, b"client", b, a),
        hs.compute_mac(OTHER, b"client", a, b),
    }
    assert len(macs) == 4
    with pytest.raises(ValueError):
        hs.compute_mac(SECRET, b"client", a[:-1], b)


def test_other_protocol_version_is_not_a_secret_mismatch():
    nonce = hs.new_nonce()
    proof = hs.client_proof(SECRET, nonce, hs.new_nonce())
    other_version = proof.replace(hs.TAG, hs.TAG[:-1] + b"2", 1)
    with pytest.raises(hs.HandshakeError) as info:
        hs.check_client_proof(SECRET, nonce, other_version)
    assert not isinstance(info.value, hs.SecretMismatch)
    with pytest.raises(hs.HandshakeError, match="greeting"):
        hs.parse_server_hello(hs.server_hello(nonce).replace(hs.TAG, b"x" * len(hs.TAG)))


@pytest.mark.parametrize("cut", [0, 1, hs.SERVER_HELLO_SIZE - 1])
def test_truncated_or_long_hello_is_rejected(cut):
    hello = hs.server_hello(hs.new_nonce())
    with pytest.raises(hs.HandshakeError):
        hs.parse_server_hello(hello[:cut])
    with pytest.raises(hs.HandshakeError):
        hs.parse_server_hello(hello + b"x")


def test_proof_prefix_check_accepts_every_prefix_of_a_proof():
    proof = hs.client_proof(SECRET, hs.new_nonce(), hs.new_nonce())
    assert all(hs.proof_prefix_ok(proof[:n]) for n in range(len(proof) + 1))


@pytest.mark.parametrize(
    "start", [b"00000123import os", b"GET / HTTP/1.1\r\n", hs.TAG + b"S", b"xnet-socket-auth/2"]
)
def test_proof_prefix_check_rejects_foreign_bytes_early(start):
    assert not hs.proof_prefix_ok(start)


@given(st.binary(max_size=2 * hs.CLIENT_PROOF_SIZE))
def test_garbage_never_passes_as_a_proof(data):
    with pytest.raises(hs.HandshakeError):
        hs.check_client_proof(SECRET, bytes(hs.NONCE_SIZE), data)


@given(st.binary(max_size=hs.CLIENT_PROOF_SIZE - len(hs.TAG) - 1))
def test_garbage_after_the_tag_never_passes_as_a_proof(tail):
    with pytest.raises(hs.HandshakeError):
        hs.check_client_proof(SECRET, bytes(hs.NONCE_SIZE), hs.TAG + b"C" + tail)


@given(st.binary(max_size=2 * hs.VERDICT_SIZE))
def test_garbage_never_passes_as_a_verdict(data):
    with pytest.raises(hs.HandshakeError):
        hs.check_verdict(SECRET, bytes(hs.NONCE_SIZE), bytes(hs.NONCE_SIZE), data)


def test_bytecode_magic_has_the_wire_size():
    assert len(hs.bytecode_magic()) == hs.MAGIC_SIZE
