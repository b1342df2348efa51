#!/usr/bin/env python3
"""Sets the dev_item UUID (blkid's UUID_SUB) of a btrfs device image.

    fault_btrfs_sb.py IMAGE UUID

Rewrites every superblock copy present in IMAGE (64 KiB, 64 MiB, 256 GiB)
and its crc32c checksum. Used by fault_test.sh case 7 to make an impostor
that carries a member's fsid, devid AND UUID_SUB but is another filesystem
(other label, generation, trees). Only crc32c filesystems (mkfs.btrfs's
default) are supported.
"""
import sys
import uuid

SUPER_OFFSETS = (64 << 10, 64 << 20, 256 << 30)
SUPER_SIZE = 4096
CSUM_SIZE = 32  # the checksum field at the start of the superblock
MAGIC_OFFSET, MAGIC = 0x40, b"_BHRfS_M"
CSUM_TYPE_OFFSET = 0xC4  # u16, 0 = crc32c
DEV_ITEM_OFFSET = 0xC9
DEV_ITEM_UUID = DEV_ITEM_OFFSET + 66  # devid, total/used bytes, io/sector sizes, type, gen, start, group, seek, bw


def crc32c(data: bytes) -> int:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path, new_uuid = sys.argv[1], uuid.UUID(sys.argv[2]).bytes
    patched = 0
    with open(path, "r+b") as f:
        for offset in SUPER_OFFSETS:
            f.seek(offset)
            sb = bytearray(f.read(SUPER_SIZE))
            if len(sb) < SUPER_SIZE or sb[MAGIC_OFFSET:MAGIC_OFFSET + len(MAGIC)] != MAGIC:
                continue
            if int.from_bytes(sb[CSUM_TYPE_OFFSET:CSUM_TYPE_OFFSET + 2], "little") != 0:
                print(f"{path}: superblock at {offset} is not crc32c", file=sys.stderr)
                return 1
            sb[DEV_ITEM_UUID:DEV_ITEM_UUID + 16] = new_uuid
            sb[0:CSUM_SIZE] = crc32c(bytes(sb[CSUM_SIZE:])).to_bytes(4, "little") + bytes(CSUM_SIZE - 4)
            f.seek(offset)
            f.write(sb)
            patched += 1
    if patched == 0:
        print(f"{path}: no btrfs superblock", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
