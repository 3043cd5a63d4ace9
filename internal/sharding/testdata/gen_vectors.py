#!/usr/bin/env python3
"""Generate vectors.json: shard routing vectors from an independent implementation.

The VK parser services route a key to a database shard with their
DatabaseSharding.get_shard (docs/architecture.md, "Database shards"):

    hash_value = int(hashlib.md5(key.encode()).hexdigest(), 16)
    shard_index = hash_value % self.shard_count

and build keys as f"user_{user_id}" and f"group_{group_id}". This script runs
exactly that code with CPython's hashlib and arbitrary-precision int, so the Go
package internal/sharding is checked against the services' own arithmetic
rather than against itself.

The output is deterministic (no timestamps, no randomness, fixed order), one
vector per line so that a change shows as a readable diff. Regenerate with:

    python3 internal/sharding/testdata/gen_vectors.py > internal/sharding/testdata/vectors.json

Format:
    {"generator": ..., "algorithm": "md5-mod-n", "shardCounts": [1, 2, ...],
     "vectors": [{"key": "user_0", "md5": "<hex>", "shards": [s1, s2, ...]}, ...]}
where shards[i] is the shard index of key for shardCounts[i] shards.
"""

import hashlib
import json
import sys

# The counts the operator allows (1..64) at their interesting points: 1 (every
# key on shard 0), powers of two (only the low bits of the digest matter),
# primes and odd counts (every bit matters). The last three exceed 32 and 63
# bits of intermediate precision and so catch a routing that truncates the
# 128-bit digest or overflows while reducing it.
SHARD_COUNTS = [1, 2, 3, 4, 7, 8, 16, 33, 64, 2**32 + 15, 2**61 - 1, 2**63 - 1]


class DatabaseSharding:
    """The services' class, verbatim apart from taking a shard count."""

    def __init__(self, shard_count: int):
        self.shard_count = shard_count

    def get_shard(self, key: str) -> int:
        hash_value = int(hashlib.md5(key.encode()).hexdigest(), 16)
        return hash_value % self.shard_count

    @staticmethod
    def user_key(user_id: int) -> str:
        return f"user_{user_id}"

    @staticmethod
    def group_key(group_id: int) -> str:
        return f"group_{group_id}"


def keys():
    """Every key in a fixed order."""
    out = [DatabaseSharding.user_key(i) for i in range(200)]
    out += [DatabaseSharding.group_key(i) for i in range(100)]
    out += [
        "",                                   # empty key
        "пользователь_1",                     # Cyrillic: UTF-8 multi-byte
        "группа_🙂",                           # 4-byte UTF-8
        "user_-1",                            # a negative id, as f"user_{-1}" makes it
        DatabaseSharding.user_key(2**63 - 1),   # the largest int64 id
        DatabaseSharding.group_key(-2**63),     # the smallest int64 id
        "user 42",                            # a space
        "\x00",                               # a NUL byte
        "user_" + "9" * 100,                  # a long numeric id
        "x" * 1000,                           # longer than one md5 block
        "ключ-" * 300,                        # long and multi-byte
    ]
    return out


def main() -> None:
    routers = [DatabaseSharding(n) for n in SHARD_COUNTS]
    w = sys.stdout
    w.write("{\n")
    w.write('  "generator": "internal/sharding/testdata/gen_vectors.py (CPython hashlib.md5, int % n)",\n')
    w.write('  "algorithm": "md5-mod-n",\n')
    w.write('  "shardCounts": %s,\n' % json.dumps(SHARD_COUNTS))
    w.write('  "vectors": [\n')
    ks = keys()
    for i, key in enumerate(ks):
        vector = {
            "key": key,
            "md5": hashlib.md5(key.encode()).hexdigest(),
            "shards": [r.get_shard(key) for r in routers],
        }
        sep = "," if i < len(ks) - 1 else ""
        w.write("    %s%s\n" % (json.dumps(vector, ensure_ascii=False), sep))
    w.write("  ]\n}\n")


if __name__ == "__main__":
    main()
