"""Byte-exact pcap writing and UDP 848 framing for the analyser tests."""
import struct

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

KS, GROUP, MEMBER = "10.0.0.1", "239.1.1.1", "10.0.0.5"


def write_pcap(path, frames, linktype=1):
    """Classic pcap writer, byte-exact: frames are bytes or (captured, original length)."""
    with open(path, "wb") as handle:
        handle.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype))
        for index, frame in enumerate(frames):
            data, wire_len = frame if isinstance(frame, tuple) else (frame, len(frame))
            handle.write(struct.pack("<IIII", 1700000000 + index, 0, len(data), wire_len))
            handle.write(data)
    return path


def udp848(payload, src=KS, dst=GROUP):
    """An Ethernet frame carrying `payload` on UDP 848 -> 848 (IPv6 for IPv6 addresses)."""
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return bytes(Ether() / ip / UDP(sport=848, dport=848) / payload)
