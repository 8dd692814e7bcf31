"""Independent oracle: Wireshark's ISAKMP/GDOI dissector reads what we forge.

Messages built with scapy-gdoi are written to a pcap and dissected with
``tshark -d udp.port==848,isakmp -T json``; every field Wireshark decodes must
agree with our own dissection, and no frame may be malformed.

What Wireshark (4.0) does not decode, and so cannot check here:
- the GAP payload: Wireshark has no GAP dissector at all;
- SA sub-payloads after an SA KEK: it decodes the SAK and stops (it also names the
  KEK attributes after IPsec SA attributes). The SA TEKs are therefore checked in a
  second rekey whose SA holds only SA TEKs, which Wireshark does walk.
"""

import json
import subprocess

import pytest
from scapy.all import IP, UDP, wrpcap

from scapy_gdoi import (
    GDOI, GDOI_GAP, GDOI_GAP_Attr, GDOI_HASH, GDOI_ID, GDOI_IPsec_Attr, GDOI_KD,
    GDOI_KD_KEK_Attr, GDOI_KD_TEK_Attr, GDOI_KEK_Attr, GDOI_KeyPacket, GDOI_NONCE, GDOI_SA,
    GDOI_SAK, GDOI_SAT_IPsec, GDOI_SEQ, GDOI_SIG,
)

pytestmark = pytest.mark.tshark

KEK_SPI = b"abcdefgh01234567"


def colon_hex(data):
    return ":".join("%02x" % b for b in data)


def tek_pair():
    return (GDOI_SAT_IPsec(src_id="10.1.0.0/16", dst_id="10.2.0.0/16", transform_id="ESP_AES-CBC",
                           spi=0x11223344, attrs=[GDOI_IPsec_Attr(type="SA_LIFE_TYPE", value=1),
                                                  GDOI_IPsec_Attr(type="SA_LIFE_DURATION", value=3600)])
            / GDOI_SAT_IPsec(protocol_id="GDOI_PROTO_IPSEC_AH", protocol=17, src_id_type=1,
                             src_id="10.3.0.1", src_id_port=1000, dst_id_type=5,
                             dst_id="2001:db8::1", dst_id_port=2000, transform_id=5, spi=0x55667788))


def sa_kek():
    return GDOI_SAK(src_id="10.0.0.1", src_id_port=848, dst_id="239.1.1.1", dst_id_port=848,
                    spi=KEK_SPI, attrs=[GDOI_KEK_Attr(type="KEK_ALGORITHM", value="KEK_ALG_AES"),
                                        GDOI_KEK_Attr(type="KEK_KEY_LENGTH", value=128),
                                        GDOI_KEK_Attr(type="KEK_ACK_REQUESTED", value=1)])


def key_download():
    return GDOI_KD(key_packets=[
        GDOI_KeyPacket(kd_type="TEK", spi=(0x11223344).to_bytes(4, "big"), attrs=[
            GDOI_KD_TEK_Attr(type="TEK_ALGORITHM_KEY", value=b"K" * 16),
            GDOI_KD_TEK_Attr(type="TEK_INTEGRITY_KEY", value=b"I" * 20)]),
        GDOI_KeyPacket(kd_type="KEK", spi=KEK_SPI, attrs=[
            GDOI_KD_KEK_Attr(type="KEK_ALGORITHM_KEY", value=b"v" * 16 + b"k" * 16)])])


def udp848(msg, src="10.0.0.1", dst="239.1.1.1"):
    return IP(src=src, dst=dst) / UDP(sport=848, dport=848) / msg


def messages():
    header = dict(init_cookie=KEK_SPI[:8], resp_cookie=KEK_SPI[8:])
    push = (GDOI(exch_type="GROUPKEY-PUSH", **header) / GDOI_SEQ(seq=7)
            / GDOI_SA(payloads=sa_kek() / GDOI_GAP(attrs=[
                GDOI_GAP_Attr(type="ACTIVATION_TIME_DELAY", value=30),
                GDOI_GAP_Attr(type="D3P_TYPE", value="POSIX-TIME-MSEC"),
                GDOI_GAP_Attr(type="D3P_WINDOW_SIZE", value=5000)]) / tek_pair())
            / key_download() / GDOI_SIG(sig=b"S" * 128))
    push_teks_only = (GDOI(exch_type="GROUPKEY-PUSH", **header) / GDOI_SEQ(seq=8)
                      / GDOI_SA(payloads=tek_pair()) / key_download() / GDOI_SIG(sig=b"T" * 64))
    pull2 = (GDOI(init_cookie=b"I" * 8, resp_cookie=b"R" * 8, exch_type="GROUPKEY-PULL",
                  id=0x3CC1F923)
             / GDOI_HASH(hash=b"h" * 20) / GDOI_NONCE(nonce=b"n" * 16)
             / GDOI_SA(payloads=sa_kek()))
    ack = (GDOI(exch_type="GROUPKEY-PUSH-ACK", **header) / GDOI_HASH(hash=b"a" * 32)
           / GDOI_SEQ(seq=7) / GDOI_ID(id_type="ID_IPV4_ADDR", id_data="10.0.0.9"))
    return {"push": push, "push_teks_only": push_teks_only, "pull2": pull2, "ack": ack}


def flatten(node, out):
    """Collect every scalar of tshark's JSON tree per field name, in document order."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (dict, list)) and not (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)):
                flatten(value, out)
            else:
                out.setdefault(key, []).extend(value if isinstance(value, list) else [value])
    elif isinstance(node, list):
        for item in node:
            flatten(item, out)
    return out


@pytest.fixture(scope="module")
def tshark_view(tmp_path_factory):
    built = messages()
    path = tmp_path_factory.mktemp("oracle") / "forged.pcap"
    wrpcap(str(path), [udp848(msg) for msg in built.values()])
    result = subprocess.run(
        ["tshark", "-r", str(path), "-d", "udp.port==848,isakmp", "-T", "json",
         "--no-duplicate-keys"], capture_output=True, text=True, check=True)
    frames = json.loads(result.stdout)
    assert len(frames) == len(built)
    views = {}
    for name, frame in zip(built, frames):
        layers = frame["_source"]["layers"]
        views[name] = (GDOI(bytes(built[name])), flatten(layers["isakmp"], {}), layers)
    return views


def top_level_payloads(msg):
    return list(msg.iterpayloads())[1:]


def test_no_frame_is_malformed(tshark_view):
    for name, (_ours, _theirs, layers) in tshark_view.items():
        text = json.dumps(layers)
        assert "_ws.malformed" not in text, name
        assert '"_ws.expert.severity": "8388608"' not in text, name  # PI_ERROR


def test_headers_agree(tshark_view):
    for name, (ours, theirs, _layers) in tshark_view.items():
        assert theirs["isakmp.ispi"] == [colon_hex(ours.init_cookie)], name
        assert theirs["isakmp.rspi"] == [colon_hex(ours.resp_cookie)], name
        assert theirs["isakmp.exchangetype"] == [str(ours.exch_type)], name
        assert theirs["isakmp.length"] == [str(ours.length)], name
        assert int(theirs["isakmp.messageid"][0], 16) == ours.id, name
        # Header Next Payload, then each top-level payload's Next Payload.
        expected = [ours.next_payload] + [p.next_payload for p in top_level_payloads(ours)
                                          if hasattr(p, "next_payload")]
        assert [int(v) for v in theirs["isakmp.nextpayload"]] == expected, name
        assert [int(v) for v in theirs["isakmp.payloadlength"]] == [
            p.length for p in top_level_payloads(ours) if hasattr(p, "length")], name


def test_rekey_seq_sa_kek_kd_and_sig_agree(tshark_view):
    ours, theirs, _layers = tshark_view["push"]
    assert theirs["isakmp.seq.seq"] == [str(ours[GDOI_SEQ].seq)]
    sa = ours[GDOI_SA]
    assert theirs["isakmp.sa.doi"] == ["2"]
    assert theirs["isakmp.sa.next_attribute_payload"] == ["00:0f"]
    sak = sa.payloads
    assert theirs["isakmp.sak.payload_len"] == [str(sak.length)]
    assert theirs["isakmp.sak.nextpayload"] == [str(sak.next_payload)]
    assert theirs["isakmp.sak.protoid"] == [str(sak.protocol)]
    assert theirs["isakmp.sak.src_id_data"] == [colon_hex(sak.src_id)]
    assert theirs["isakmp.sak.dst_id_data"] == [colon_hex(sak.dst_id)]
    assert theirs["isakmp.sak.src_id_port"] == theirs["isakmp.sak.dst_id_port"] == ["848"]
    assert theirs["isakmp.sak.spi"] == [colon_hex(KEK_SPI)]
    # KEK attributes (Wireshark labels them with IPsec SA attribute names).
    assert [int(t) for t in theirs["isakmp.ipsec.attr.type"]] == [a.type for a in sak.attrs]
    assert_key_download(ours, theirs)
    assert theirs["isakmp.sig"] == [colon_hex(ours[GDOI_SIG].sig)]
    # Wireshark has no GAP dissector and stops after the SAK: say so, explicitly.
    assert not any(key.startswith(("isakmp.gap", "isakmp.sat")) for key in theirs)


def assert_key_download(ours, theirs):
    kd = ours[GDOI_KD]
    assert theirs["isakmp.kd.num_pkt"] == [str(kd.num_packets)]
    assert theirs["isakmp.kd.payload.type"] == [str(kp.kd_type) for kp in kd.key_packets]
    assert theirs["isakmp.kd.payload.length"] == [str(kp.kd_length) for kp in kd.key_packets]
    assert theirs["isakmp.kd.payload.spi_size"] == [str(kp.spi_size) for kp in kd.key_packets]
    assert theirs["isakmp.kd.payload.spi"] == [colon_hex(kp.spi) for kp in kd.key_packets]
    attrs = [a for kp in kd.key_packets for a in kp.attrs]
    assert theirs["isakmp.key_download.attr.type"] == [str(a.type) for a in attrs]
    assert theirs["isakmp.key_download.attr.length"] == [str(a.length) for a in attrs]
    assert theirs["isakmp.key_download.attr.value"] == [colon_hex(a.data) for a in attrs]


def test_sa_teks_agree(tshark_view):
    ours, theirs, _layers = tshark_view["push_teks_only"]
    teks = ours[GDOI_SA].sub_payloads()
    assert len(teks) == 2
    for field, values in {
        "isakmp.sat.payload_len": [t.length for t in teks],
        "isakmp.sat.nextpayload": [t.next_payload for t in teks],
        "isakmp.sat.protocol_id": [t.protocol_id for t in teks],
        "isakmp.sat.protocol": [t.protocol for t in teks],
        "isakmp.sat.src_id_type": [t.src_id_type for t in teks],
        "isakmp.sat.src_id_port": [t.src_id_port for t in teks],
        "isakmp.sat.src_id_length": [t.src_id_len for t in teks],
        "isakmp.sat.dst_id_type": [t.dst_id_type for t in teks],
        "isakmp.sat.dst_id_port": [t.dst_id_port for t in teks],
        "isakmp.sat.dst_id_length": [t.dst_id_len for t in teks],
        "isakmp.sat.transform_id": [t.transform_id for t in teks],
    }.items():
        assert theirs[field] == [str(v) for v in values], field
    assert [int(v.replace(":", ""), 16) for v in theirs["isakmp.sat.spi"]] == [t.spi for t in teks]
    assert theirs["isakmp.sat.src_id_data"][0].startswith(colon_hex(teks[0].src_id))
    assert theirs["isakmp.sat.dst_id_data"][1].startswith(colon_hex(teks[1].dst_id))
    assert [int(t) for t in theirs["isakmp.ipsec.attr.type"]] == [a.type for a in teks[0].attrs]
    assert theirs["isakmp.seq.seq"] == ["8"]
    assert_key_download(ours, theirs)


def test_pull_message_2_agrees(tshark_view):
    ours, theirs, _layers = tshark_view["pull2"]
    assert theirs["isakmp.hash"] == [colon_hex(ours[GDOI_HASH].hash)]
    assert theirs["isakmp.nonce"] == [colon_hex(ours[GDOI_NONCE].nonce)]
    assert theirs["isakmp.sak.spi"] == [colon_hex(KEK_SPI)]
    assert theirs["isakmp.sa.next_attribute_payload"] == ["00:0f"]


def test_rfc8263_ack_agrees(tshark_view):
    ours, theirs, _layers = tshark_view["ack"]
    assert theirs["isakmp.exchangetype"] == ["35"]
    assert theirs["isakmp.hash"] == [colon_hex(ours[GDOI_HASH].hash)]
    assert theirs["isakmp.seq.seq"] == ["7"]
    assert theirs["isakmp.id.type"] == ["1"]
    assert theirs["isakmp.id.data.ipv4_addr"] == ["10.0.0.9"]
