"""Dissection, the ACK hash and key-less analysis work without the `cryptography` package;
crypto calls then fail with a clear CryptoUnavailable."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["cryptography"] = None  # makes every `import cryptography...` fail
    from scapy_gdoi import crypto
    from scapy_gdoi.analyze import analyze_capture
    from scapy_gdoi.keys import KeyStore
    assert not crypto.HAVE_CRYPTOGRAPHY
    assert len(crypto.ack_hash(b"k" * 16, b"s" * 16, "sha256", b"seq", b"id")) == 32
    try:
        crypto.kek_cipher("aes").encrypt(b"k" * 16, b"i" * 16, b"x")
    except crypto.CryptoUnavailable as exc:
        assert "pip install cryptography" in str(exc)
    else:
        raise AssertionError("no CryptoUnavailable")
    reports = list(analyze_capture(sys.argv[1]))
    assert [r["kind"] for r in reports].count("rekey") == 2
    assert all(r["decrypted"] is False for r in reports)
    try:
        KeyStore.from_file(sys.argv[2])
    except crypto.CryptoUnavailable:
        pass
    else:
        raise AssertionError("a PEM signing key needs cryptography")
    print("ok")
""")


def test_works_without_cryptography(vectors_dir):
    out = subprocess.run([sys.executable, "-c", SCRIPT,
                          str(vectors_dir / "gdoid-3clients-ks.pcap"),
                          str(vectors_dir / "keys.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
