"""Wireshark's ISAKMP dissector as an independent oracle for what we forge and analyse."""
import os
import shutil
import subprocess

import pytest

pytest.importorskip("cryptography")
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from scapy_gdoi import _consts as C  # noqa: E402
from scapy_gdoi import ack, wire  # noqa: E402
from scapy_gdoi.analyze import analyze_capture  # noqa: E402
from scapy_gdoi.forge import GAPPolicy, PushPolicy, TEKPolicy, forge_push  # noqa: E402
from scapy_gdoi.rekey import KEKContext  # noqa: E402

from capture_helpers import udp848, write_pcap  # noqa: E402

pytestmark = pytest.mark.tshark

FIELDS = ("frame.number", "isakmp.exchangetype", "isakmp.ispi", "isakmp.rspi",
          "isakmp.flag_e", "isakmp.length", "isakmp.typepayload", "isakmp.payloadlength",
          "isakmp.seq.seq", "isakmp.id.data.ipv4_addr", "isakmp.hash", "isakmp.kd.num_pkt",
          "isakmp.kd.payload.spi")


def tshark_rows(path):
    command = [shutil.which("tshark") or "tshark", "-r", str(path), "-d",
               "udp.port==848,isakmp", "-T", "fields", "-E", "aggregator=,"]
    for field in FIELDS:
        command += ["-e", field]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return [dict(zip(FIELDS, line.split("\t"))) for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def forged(tmp_path_factory):
    signer = ec.generate_private_key(ec.SECP256R1())
    kek = KEKContext(os.urandom(16), "aes", os.urandom(16), os.urandom(16),
                     private_key=signer, ack_method=C.KEK_ACK_SHA256)
    rekey = bytes(forge_push(PushPolicy(
        kek, 41, teks=[TEKPolicy(0xABCD0001), TEKPolicy(0xABCD0002)],
        gap=GAPPolicy(atd=3, d3p_type=C.D3P_TS_POSIX_TIME_MSEC, d3p_window_ms=1000),
        ack_requested=C.KEK_ACK_SHA256)))
    member_ack = bytes(ack.build_ack(rekey, "10.0.0.5", kek))
    frames = [udp848(rekey), udp848(kek.decrypt_bytes(rekey)),
              udp848(member_ack, "10.0.0.5", "10.0.0.1")]
    path = write_pcap(tmp_path_factory.mktemp("tshark") / "forged.pcap", frames)
    return kek, rekey, member_ack, path


def test_tshark_reads_our_ack_as_decisions_md_says(forged):
    kek, _rekey, member_ack, path = forged
    row = tshark_rows(path)[2]
    assert row["isakmp.exchangetype"] == str(C.EXCH_GROUPKEY_PUSH_ACK)
    assert bytes.fromhex(row["isakmp.ispi"] + row["isakmp.rspi"]) == kek.spi
    assert row["isakmp.flag_e"] == "0" and row["isakmp.length"] == str(len(member_ack))
    assert row["isakmp.typepayload"] == "%d,%d,%d" % (C.PT_HASH, C.PT_SEQ, C.PT_ID)
    assert row["isakmp.payloadlength"] == "36,8,12"
    assert row["isakmp.seq.seq"] == "41" and row["isakmp.id.data.ipv4_addr"] == "10.0.0.5"
    assert bytes.fromhex(row["isakmp.hash"]) == ack.parse_ack(member_ack).hash


def test_tshark_reads_our_rekey_payloads(forged):
    kek, rekey, _ack, path = forged
    encrypted, plain = tshark_rows(path)[:2]
    assert encrypted["isakmp.exchangetype"] == str(C.EXCH_GROUPKEY_PUSH)
    assert encrypted["isakmp.flag_e"] == "1" and encrypted["isakmp.length"] == str(len(rekey))
    assert plain["isakmp.typepayload"] == "%d,%d,%d,%d" % (C.PT_SEQ, C.PT_SA, C.PT_KD, C.PT_SIG)
    ours = wire.iter_payloads(C.PT_SEQ, kek.decrypt_bytes(rekey)[28:])
    assert plain["isakmp.payloadlength"] == ",".join(str(len(p)) for _, _, p in ours)
    assert plain["isakmp.seq.seq"] == "41" and plain["isakmp.kd.num_pkt"] == "3"
    assert plain["isakmp.kd.payload.spi"] == ",".join([kek.spi.hex(), "abcd0001", "abcd0002"])


def test_analyze_and_tshark_agree_on_the_gdoid_capture(vectors_dir):
    path = vectors_dir / "gdoid-3clients-ks.pcap"
    rows = tshark_rows(path)
    reports = list(analyze_capture(path))
    assert len(rows) == len(reports) == 32
    for row, report in zip(rows, reports):
        assert int(row["frame.number"]) == report["frame"]
        number = int(row["isakmp.exchangetype"])
        assert report["exchange"] == C.GDOI_EXCHANGE_TYPES[number]
        if report["kek_spi"]:
            assert row["isakmp.ispi"] + row["isakmp.rspi"] == report["kek_spi"]
