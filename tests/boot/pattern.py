# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest agent's data pattern and stream digest, computed on the host.

Pattern (tests/guest/agent.c, pattern_fill): with seed S, 512-byte block s
holds 64 little-endian u64 words w[i] = h + i*G (mod 2^64) with
h = mix(S ^ (s*G)), G = 0x9e3779b97f4a7c15, mix = SplitMix64's finalizer.
Disks hold it from sector 0; network streams carry it from byte 0.

Digest (digest_words): FNV-1a over the little-endian u64 words of a stream.
"""
import struct

MASK64 = (1 << 64) - 1
PATTERN_G = 0x9E3779B97F4A7C15
SECTOR = 512
_SECTOR_WORDS = struct.Struct("<64Q")
_STEPS = [i * PATTERN_G & MASK64 for i in range(64)]


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def disk_pattern(seed, size):
    """The bytes the guest agent writes over a disk of size bytes with this seed."""
    assert size % SECTOR == 0
    out = bytearray()
    for s in range(size // SECTOR):
        h = _mix64(seed ^ (s * PATTERN_G & MASK64))
        out += _SECTOR_WORDS.pack(*[(h + st) & MASK64 for st in _STEPS])
    return bytes(out)


FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3


def stream_digest(data, h=FNV_OFFSET):
    """The guest agent's stream digest of data (a multiple of 8 bytes)."""
    for (w,) in struct.iter_unpack("<Q", data):
        h = ((h ^ w) * FNV_PRIME) & MASK64
    return h
