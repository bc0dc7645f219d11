#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/.

A handful of small, meaningful inputs per target, from the on-disk formats as SECURITY.md and
src/header.rs, src/codec.rs and src/crypto.rs describe them (written independently of the Rust
code, so the seeds also cross-check the format). Run from anywhere: `python3 fuzz/seeds.py`.
The sealed-record seeds need the `cryptography` package; without it they are skipped.
"""

import hashlib
import hmac
import os
import struct
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --- records: bincode 2.0 standard configuration (varint, little-endian) through serde --------


def varint(n):
    if n < 251:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfb" + struct.pack("<H", n)
    if n < 1 << 32:
        return b"\xfc" + struct.pack("<I", n)
    return b"\xfd" + struct.pack("<Q", n)


def opt_str(value):
    if value is None:
        return b"\x00"
    raw = value.encode()
    return b"\x01" + varint(len(raw)) + raw


def opt_i64(value):
    if value is None:
        return b"\x00"
    zigzag = (value << 1) ^ (value >> 63)
    return b"\x01" + varint(zigzag & (1 << 64) - 1)


def record(id, user=None, client_id=None, secret=None, refresh=None, access=None, grant=None,
           expiry=None, redirect=None, domain=None):
    strings = [id, user, client_id, secret, refresh, access, grant]
    tail = [redirect, domain]
    return b"".join(map(opt_str, strings)) + opt_i64(expiry) + b"".join(map(opt_str, tail))


FULL = record("1", "user1@example.com", "1000.CLIENT", "s3cret", "1000.refresh", "1000.access",
              "1000.grant", 1_900_000_000_000, "https://app.example.com/cb",
              "https://www.zohoapis.eu")
NUL = record("2", refresh="r\0with nul", expiry=-1)
EMPTY = record(None)


# --- sealed records under the fuzzing hooks' fixed key -----------------------------------------


def hkdf_sha256(ikm, info, length=32):
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()[:length]


def seal(id, plain):
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = hkdf_sha256(b"\x5a" * 32, b"tokenvault/v1/record")
    nonce = bytes(range(12))
    aad = b"tokenvault/v1/record\0" + b"\x01" + id.encode()
    return b"\x01" + nonce + AESGCM(key).encrypt(nonce, plain, aad)


def record_seeds():
    # Odd first byte: the bytes after the id are sealed first, so they reach the decoder.
    write("record", "plain-full", b"\x01" + b"1\xff" + FULL)
    write("record", "plain-nul", b"\x01" + b"2\xff" + NUL)
    write("record", "plain-empty", b"\x01" + b"\xff" + EMPTY)
    write("record", "plain-huge-length", b"\x01" + b"1\xff" + b"\x01\xfd" + b"\xff" * 8)
    # Even first byte: the bytes after the id are opened as a stored record.
    write("record", "sealed-garbage", b"\x00" + b"1\xff" + b"\x01" + bytes(12) + bytes(40))
    try:
        write("record", "sealed-full", b"\x00" + b"1\xff" + seal("1", FULL))
        write("record", "sealed-wrong-id", b"\x00" + b"9\xff" + seal("1", FULL))
    except ImportError:
        print("cryptography is not installed: skipping the sealed-record seeds")


# --- headers: format version 1, see src/header.rs ----------------------------------------------


def header(version=1, memory_kib=1024, iterations=1, parallelism=1, extra=b""):
    body = b"TOKENVLT" + struct.pack("<H", version) + b"\x01"
    body += struct.pack("<III", memory_kib, iterations, parallelism)
    body += bytes(range(32)) + bytes(12) + bytes(range(48)) + extra
    return body + hashlib.sha256(body).digest()


def header_seeds():
    write("header", "v1", header())
    write("header", "v1-default-kdf", header(memory_kib=64 * 1024, iterations=3, parallelism=4))
    write("header", "v1-kdf-4tib", header(memory_kib=0xFFFFFFFF))
    write("header", "v1-kdf-too-much-work", header(memory_kib=1 << 20, iterations=16))
    write("header", "v1-no-lanes", header(parallelism=0))
    write("header", "v2-longer", header(version=2, extra=b"future fields"))
    write("header", "v1-truncated", header()[:60])


# --- files: 8-byte damage commands, see fuzz_targets/files.rs ----------------------------------

# The template's files, sorted: db/conf, db/db, tokenvault.header, tokenvault.lock,
# tokenvault.seal.
CONF, LOG, HEADER, LOCK, SEAL = range(5)
FLIP, SET, TRUNCATE, EXTEND, DELETE = range(5)


def command(kind, file, offset=0, value=0, count=0):
    return bytes([kind, file]) + struct.pack("<I", offset) + bytes([value, count])


def files_seeds():
    write("files", "nothing", b"")
    write("files", "flip-log", command(FLIP, LOG, 1000, 0x10))
    write("files", "flip-log-tail", command(FLIP, LOG, 0xFFFFFFF0, 0x01))
    write("files", "truncate-log", command(TRUNCATE, LOG, 2000))
    write("files", "extend-log", command(EXTEND, LOG, 0, 0xAB, 200))
    write("files", "flip-conf", command(FLIP, CONF, 5, 0x04))
    write("files", "delete-seal", command(DELETE, SEAL))
    write("files", "seal-one-slot", command(TRUNCATE, SEAL, 40))
    write("files", "header-kdf", command(SET, HEADER, 13, 0xFF))
    write("files", "two-flips", command(FLIP, LOG, 300, 0x80) + command(FLIP, SEAL, 10, 0x01))


# --- ops: operation sequences, see fuzz_targets/ops.rs -----------------------------------------

SAVE, FIND, FIND_BY_ID, DELETE_ONE, GET_ALL, DELETE_ALL, PURGE, REOPEN, PASSPHRASE = range(9)


def token_operands(id=0, user=0, client=0, secret=0, refresh=0, access=0, grant=0, expiry=0):
    # Indexes into IDS and VALUES of ops.rs; 0 is "none".
    return bytes([id, user, client, secret, refresh, access, grant, expiry, 0, 0])


def ops_seeds():
    save_a = bytes([SAVE]) + token_operands(user=2, refresh=3, access=4)
    write("ops", "save-find-reopen", b"\x00" + save_a
          + bytes([FIND]) + token_operands(user=2)
          + bytes([REOPEN, GET_ALL]))
    write("ops", "conflict", b"\x00" + save_a + bytes([SAVE]) + token_operands(user=2, access=5)
          + bytes([SAVE]) + token_operands(user=5, access=4))
    write("ops", "rotate-by-id", b"\x01" + save_a
          + bytes([SAVE]) + token_operands(id=2, refresh=5) + bytes([FIND_BY_ID, 2]))
    write("ops", "largest-id", b"\x00" + bytes([SAVE]) + token_operands(id=9, access=2)
          + save_a)
    write("ops", "purge", b"\x00" + bytes([SAVE]) + token_operands(access=2, expiry=5)
          + bytes([PURGE, 10, GET_ALL]))
    write("ops", "passphrase", b"\x00" + save_a + bytes([PASSPHRASE, 1, PASSPHRASE, 0, GET_ALL]))
    write("ops", "delete-all", b"\x01" + save_a + bytes([DELETE_ALL, DELETE_ONE, 2]) + save_a)


if __name__ == "__main__":
    record_seeds()
    header_seeds()
    files_seeds()
    ops_seeds()
    for target in sorted(os.listdir(CORPUS)):
        print(f"{target}: {len(os.listdir(CORPUS / target))} seeds")
