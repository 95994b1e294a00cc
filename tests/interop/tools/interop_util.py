#!/usr/bin/env python3
"""Small tools for the interop suite (run.sh). Subcommands:

  text LEN TAG
      Print (without newline) a deterministic printable-ASCII text of exactly LEN bytes that
      starts with TAG, so a message can be recognised and compared byte for byte. No line
      breaks (smbclient turns LF into CRLF), no characters a shell or a code page changes.

  inbox-find [--text T | --text-file F] [--to N] [--from N] [--transport X] [--source S]
      Read `messenger inbox --json` output (one JSON object per line) on stdin; exit 0 if one
      message matches every given condition (text exact, names case-insensitive), else print
      what the inbox holds and exit 1.

  dir-find DIR PREFIX (--text T | --text-file F)
      Exit 0 if a file DIR/PREFIX* holds exactly the text (bytes), else list what is there.

  smb-texts [PORT ...]
      Read `tshark -T fields -E separator=/t -e tcp.stream -e tcp.srcport -e tcp.dstport
      -e tcp.payload` lines on stdin and print one line per TCP stream with the SMB messenger
      text its requests carried (0xD0 text, or the 0xD7 blocks joined), as
      `stream<TAB>from<TAB>to<TAB>text` (text with CR/LF shown as \\r/\\n). Wireshark 4.0
      misreads the 0xD7 request (it takes the group id for the byte count), so the text is
      taken from the raw payload here, following [MS-MSRP] 2.2.3.
      PORTs (default 139) are the ports where the SMB server listens: payload sent to them
      is parsed as requests.

  mailslot-texts
      Read `tshark -T fields -e udp.payload` lines of NetBIOS datagrams (UDP 138) on stdin
      and print `mailslot<TAB>from<TAB>to<TAB>text` for each \\MAILSLOT\\... write
      ([MS-MAIL] 2.2.1, payload From\\0To\\0Text\\0).
"""
import json
import os
import struct
import sys

FILLER = (
    "The quick brown fox jumps over the lazy dog; "
    "PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS, 0123456789. "
)


def make_text(length, tag):
    out = tag + " "
    i = 0
    while len(out) < length:
        # A running block counter makes every stretch of the text distinct, so a lost or
        # repeated SMB block shows up as a difference.
        out += f"[{i:04d}] " + FILLER
        i += 1
    return out[:length]


def arg_value(args, name, default=None):
    if name in args:
        i = args.index(name)
        return args[i + 1]
    return default


def expected_text(args):
    t = arg_value(args, "--text")
    f = arg_value(args, "--text-file")
    if f is not None:
        with open(f, encoding="utf-8") as fh:
            return fh.read()
    return t


def cmd_inbox_find(args):
    """Exit 0 when a message matches; with --count N, when exactly N match."""
    text = expected_text(args)
    to = arg_value(args, "--to")
    frm = arg_value(args, "--from")
    transport = arg_value(args, "--transport")
    source = arg_value(args, "--source")
    count = arg_value(args, "--count")
    seen = []
    matched = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"inbox line is not JSON ({e}): {line[:200]}")
            return 1
        seen.append(msg)
        if text is not None and msg.get("text") != text:
            continue
        if to is not None and str(msg.get("to", "")).upper() != to.upper():
            continue
        if frm is not None and str(msg.get("from", "")).upper() != frm.upper():
            continue
        if transport is not None and str(msg.get("transport", "")).lower() != transport.lower():
            continue
        if source is not None and source not in str(msg.get("source", "")):
            continue
        matched += 1
        if count is None:
            return 0
    if count is not None and matched == int(count):
        return 0
    wanted = "no" if count is None else f"{matched} (not {count})"
    print(f"{wanted} inbox messages match text={short(text)} to={to} from={frm} "
          f"transport={transport} source={source}; inbox holds {len(seen)}:")
    for m in seen:
        m = dict(m)
        m["text"] = short(m.get("text"))
        print("  " + json.dumps(m))
    return 1


def short(t, n=80):
    if t is None:
        return None
    t = str(t)
    return repr(t if len(t) <= n else t[:n] + f"...({len(t)} chars)")


def cmd_dir_find(args):
    d, prefix = args[0], args[1]
    want = expected_text(args[2:]).encode("utf-8")
    names = sorted(n for n in os.listdir(d) if n.startswith(prefix)) if os.path.isdir(d) else []
    for n in names:
        with open(os.path.join(d, n), "rb") as fh:
            if fh.read() == want:
                return 0
    print(f"no file {d}/{prefix}* holds the {len(want)}-byte text {short(want.decode())}; found:")
    for n in names:
        with open(os.path.join(d, n), "rb") as fh:
            b = fh.read()
        print(f"  {n}: {len(b)} bytes {short(b.decode('utf-8', 'replace'))}")
    return 1


def smb_frames(payload):
    """Split a TCP payload into SMB1 frames (each behind a 4-byte NBSS header)."""
    i = 0
    while i + 4 <= len(payload):
        kind = payload[i]
        length = ((payload[i + 1] & 1) << 16) | (payload[i + 2] << 8) | payload[i + 3]
        body = payload[i + 4:i + 4 + length]
        i += 4 + length
        if kind == 0x00 and body[:4] == b"\xffSMB":
            yield body


def smb_strings(buf):
    """Buffer-format 0x04 (ASCII) strings, NUL-terminated."""
    out = []
    i = 0
    while i < len(buf) and buf[i] == 0x04:
        end = buf.index(b"\x00", i + 1) if b"\x00" in buf[i + 1:] else len(buf)
        out.append(buf[i + 1:end].decode("latin-1"))
        i = end + 1
    return out, buf[i:]


def data_block(buf):
    """Buffer-format 0x01 data block: u16 length + bytes."""
    if len(buf) < 3 or buf[0] != 0x01:
        return b""
    (n,) = struct.unpack_from("<H", buf, 1)
    return buf[3:3 + n]


def cmd_smb_texts(args):
    server_ports = {int(p) for p in args} or {139}
    streams = {}
    for line in sys.stdin:
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 4 or not parts[3]:
            continue
        stream, sport, dport, hexdata = parts[0], int(parts[1]), int(parts[2]), parts[3]
        if dport not in server_ports:
            continue
        st = streams.setdefault(stream, {"from": "", "to": "", "text": b""})
        for smb in smb_frames(bytes.fromhex(hexdata.replace(":", ""))):
            if len(smb) < 35 or smb[9] & 0x80:  # too short, or a response
                continue
            cmd = smb[4]
            wct = smb[32]
            pos = 33 + 2 * wct
            (bcc,) = struct.unpack_from("<H", smb, pos)
            buf = smb[pos + 2:pos + 2 + bcc]
            if cmd == 0xD0:  # single-block: from, to, data block
                names, rest = smb_strings(buf)
                st["from"], st["to"] = (names + ["", ""])[:2]
                st["text"] += data_block(rest)
            elif cmd == 0xD5:  # start: from, to
                names, _ = smb_strings(buf)
                st["from"], st["to"] = (names + ["", ""])[:2]
            elif cmd == 0xD7:  # text block (word 0 = message group id)
                st["text"] += data_block(buf)
    for stream, st in streams.items():
        text = st["text"].decode("latin-1").replace("\r", "\\r").replace("\n", "\\n")
        print(f"{stream}\t{st['from']}\t{st['to']}\t{text}")
    return 0


def nb_name_end(buf, i):
    """Skip an encoded NetBIOS name (labels, maybe a scope) starting at i."""
    while i < len(buf) and buf[i] != 0:
        i += 1 + buf[i]
    return i + 1


def decode_nb_name(buf, i):
    n = buf[i]
    enc = buf[i + 1:i + 1 + n]
    raw = bytes(((enc[j] - 0x41) << 4) | (enc[j + 1] - 0x41) for j in range(0, len(enc) - 1, 2))
    return f"{raw[:15].decode('latin-1').rstrip()}<{raw[15]:02x}>" if len(raw) == 16 else raw.hex()


def cmd_mailslot_texts(args):
    for line in sys.stdin:
        hexdata = line.strip().replace(":", "")
        if not hexdata:
            continue
        d = bytes.fromhex(hexdata)
        if len(d) < 14 or d[0] not in (0x10, 0x11, 0x12):
            continue
        i = 14
        src = decode_nb_name(d, i)
        i = nb_name_end(d, i)
        dst = decode_nb_name(d, i)
        i = nb_name_end(d, i)
        smb = d[i:]
        if smb[:4] != b"\xffSMB" or smb[4] != 0x25:
            continue
        wct = smb[32]
        words = struct.unpack_from(f"<{wct}H", smb, 33)
        data_count, data_offset = words[11], words[12]
        pos = 33 + 2 * wct
        (bcc,) = struct.unpack_from("<H", smb, pos)
        buf = smb[pos + 2:pos + 2 + bcc]
        name = buf.split(b"\x00", 1)[0].decode("latin-1")
        payload = smb[data_offset:data_offset + data_count]
        fields = payload.split(b"\x00")
        frm, to, text = (fields + [b"", b"", b""])[:3]
        print(f"{name}\t{frm.decode('latin-1')}\t{to.decode('latin-1')}\t{text.decode('latin-1')}"
              f"\t{src}\t{dst}")
    return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "text":
        sys.stdout.write(make_text(int(args[0]), args[1]))
        return 0
    if cmd == "inbox-find":
        return cmd_inbox_find(args)
    if cmd == "dir-find":
        return cmd_dir_find(args)
    if cmd == "smb-texts":
        return cmd_smb_texts(args)
    if cmd == "mailslot-texts":
        return cmd_mailslot_texts(args)
    print(f"unknown subcommand {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
