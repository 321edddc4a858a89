#!/usr/bin/env python3
"""Minimal RFB client for the benchmark's peer: connects to a VNC server, asks for the whole
screen once (ZRLE, the lossless encoding TigerVNC and x11vnc use by default), and prints the
time from request to the complete first update and the bytes it took on the wire.

Usage: rfb_first_frame.py HOST PORT [HOLD_SECONDS]
  prints "ms=<float> bytes=<int> connect_ms=<float>"; with HOLD_SECONDS it then stays
  connected like a viewer, asking for incremental updates, so the server's CPU can be measured.
"""
import socket
import struct
import sys
import time


def recv_exact(s, n, counter):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    counter[0] += n
    return bytes(buf)


def read_update(s, c, need_pixels):
    """Reads framebuffer updates until `need_pixels` pixels were covered."""
    covered = 0
    while True:
        mtype = recv_exact(s, 1, c)[0]
        if mtype != 0:
            raise SystemExit(f"unexpected server message {mtype}")
        _, nrects = struct.unpack(">BH", recv_exact(s, 3, c))
        for _ in range(nrects):
            x, y, rw, rh, enc = struct.unpack(">HHHHi", recv_exact(s, 12, c))
            if enc == 16:
                length = struct.unpack(">I", recv_exact(s, 4, c))[0]
                recv_exact(s, length, c)
            elif enc == 0:
                recv_exact(s, rw * rh * 4, c)
            else:
                raise SystemExit(f"unexpected encoding {enc}")
            covered += rw * rh
        if covered >= need_pixels:
            return


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    t0 = time.perf_counter()
    s = socket.create_connection((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = [0]
    recv_exact(s, 12, c)
    s.sendall(b"RFB 003.008\n")
    n = recv_exact(s, 1, c)[0]
    types = recv_exact(s, n, c)
    if 1 not in types:
        raise SystemExit("server wants authentication; start it with -nopw")
    s.sendall(bytes([1]))
    if struct.unpack(">I", recv_exact(s, 4, c))[0] != 0:
        raise SystemExit("security handshake failed")
    s.sendall(bytes([1]))  # shared
    w, h = struct.unpack(">HH", recv_exact(s, 4, c))
    recv_exact(s, 16, c)  # pixel format
    name_len = struct.unpack(">I", recv_exact(s, 4, c))[0]
    recv_exact(s, name_len, c)
    # SetEncodings: ZRLE (16), raw (0) as fallback.
    s.sendall(struct.pack(">BBHii", 2, 0, 2, 16, 0))
    connect_ms = (time.perf_counter() - t0) * 1000
    c[0] = 0
    t1 = time.perf_counter()
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
    read_update(s, c, w * h)
    ms = (time.perf_counter() - t1) * 1000
    print(f"ms={ms:.1f} bytes={c[0]} connect_ms={connect_ms:.1f}", flush=True)
    if len(sys.argv) > 3:
        deadline = time.monotonic() + float(sys.argv[3])
        s.settimeout(0.5)
        while time.monotonic() < deadline:
            s.sendall(struct.pack(">BBHHHH", 3, 1, 0, 0, w, h))
            try:
                read_update(s, c, 1)
            except socket.timeout:
                pass


if __name__ == "__main__":
    main()
