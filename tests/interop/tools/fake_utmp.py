#!/usr/bin/env python3
"""Write a Linux (x86_64/aarch64 glibc) utmp file that simulates logged-in users.

Usage: fake_utmp.py FILE [user:tty[:pid] ...] [-:tty ...]

Each `user:tty` becomes a USER_PROCESS record (someone logged in on that terminal);
`-:tty` becomes a DEAD_PROCESS record (the terminal's session has ended, as login(1)
leaves it after logout). A BOOT_TIME record always comes first, as on a real system, so
that readers are seen to skip records that are not logins. With no records after FILE the
file holds only the boot record: nobody is logged in.

The file is rewritten in place (same inode) with a single write, the way utmp is updated
on a real system, so a reader watching the file sees the change.

Record layout (struct utmp, 384 bytes, little-endian):
  ut_type i16, 2 pad, ut_pid i32, ut_line[32], ut_id[4], ut_user[32], ut_host[256],
  ut_exit {e_termination i16, e_exit i16}, ut_session i32, ut_tv {tv_sec i32, tv_usec i32},
  ut_addr_v6 i32[4], __glibc_reserved[20]
"""
import os
import struct
import sys
import time

UTMP_FORMAT = "<hxxi32s4s32s256shhiii4i20s"
UTMP_SIZE = 384
assert struct.calcsize(UTMP_FORMAT) == UTMP_SIZE

BOOT_TIME = 2
USER_PROCESS = 7
DEAD_PROCESS = 8

# pid 1 is alive for the whole run, in case a reader checks that a login's process exists.
DEFAULT_PID = 1


def record(ut_type, pid, line, user, host=""):
    now = time.time()
    ut_id = line[-4:] if line else ""
    return struct.pack(
        UTMP_FORMAT,
        ut_type,
        pid,
        line.encode()[:32],
        ut_id.encode()[:4],
        user.encode()[:32],
        host.encode()[:256],
        0,
        0,
        0,
        int(now),
        int((now % 1) * 1_000_000),
        0, 0, 0, 0,
        b"",
    )


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    path = argv[1]
    data = [record(BOOT_TIME, 0, "~", "reboot")]
    for spec in argv[2:]:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[1]:
            print(f"fake_utmp.py: bad record {spec!r} (want user:tty[:pid] or -:tty)", file=sys.stderr)
            return 2
        user, tty = parts[0], parts[1]
        pid = int(parts[2]) if len(parts) == 3 else DEFAULT_PID
        if user == "-":
            data.append(record(DEAD_PROCESS, pid, tty, ""))
        else:
            data.append(record(USER_PROCESS, pid, tty, user, "10.77.0.250"))
    blob = b"".join(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, blob)
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
