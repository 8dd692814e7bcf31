"""Key-server rules (scapy_gdoi.policy) against the seed document.

Expected values are transcribed from the seed document ("GET VPN Interoperability"):
Tables 1 and 2 as printed there, its ATD formula, its configuration examples, its ranges,
restrictions, syslog lines and show outputs. They are typed here independently of the
module's own tables, so a wrong cell in the module fails a test.
"""
import pytest

from scapy_gdoi import policy
from scapy_gdoi._consts import KEK_ACK_METHODS, KEK_ACK_SHA256
from scapy_gdoi.policy import (
    AckStatus,
    ConfigError,
    CoopAnnouncement,
    GroupConfig,
    MemberTable,
    parse_config,
)

# -- Seed Table 1: "KEK SA Payload for Each Acknowledgment Option" -----------------------
# Columns: New Cisco Group Member, Cisco ASR 9000 Group Member, Non-Cisco Group Member.
NO_ATTRIBUTE = "No Attribute"
SHA256_REQUESTED = "KEK_ACK_REQ REKEY_ACK_KEK_SHA256"
SEED_TABLE_1 = {
    "cisco": (NO_ATTRIBUTE, NO_ATTRIBUTE, NO_ATTRIBUTE),
    "interoperable": (SHA256_REQUESTED, SHA256_REQUESTED, SHA256_REQUESTED),
    "any": (NO_ATTRIBUTE, SHA256_REQUESTED, SHA256_REQUESTED),
}
TABLE_1_COLUMNS = ("cisco", "asr9000", "non-cisco")
TABLE_1_CELLS = [(option, kind, row[i]) for option, row in SEED_TABLE_1.items()
                 for i, kind in enumerate(TABLE_1_COLUMNS)]

# -- Seed Table 2: "Acknowledgment Methodology" ------------------------------------------
# Columns: Key Server Accepts I-D ACK, Key Server Accepts Cisco ACK.
ERROR = "No (results in error)"
SEED_TABLE_2 = {
    "cisco": (ERROR, "Yes"),
    "interoperable": ("Yes", ERROR),
    "any": ("Yes", "Yes"),
}
TABLE_2_COLUMNS = ("rfc8263", "cisco")
TABLE_2_CELLS = [(option, kind, row[i]) for option, row in SEED_TABLE_2.items()
                 for i, kind in enumerate(TABLE_2_COLUMNS)]


def describe_kek_attribute(value):
    """Render a KEK_ACK_REQUESTED value the way Table 1 writes it."""
    return NO_ATTRIBUTE if value is None else "KEK_ACK_REQ " + KEK_ACK_METHODS[value]


@pytest.mark.parametrize("option,kind,expected", TABLE_1_CELLS)
def test_table1_every_cell(option, kind, expected):
    assert describe_kek_attribute(policy.kek_ack_requested(option, kind)) == expected


@pytest.mark.parametrize("option,kind,expected", TABLE_1_CELLS)
def test_table1_cell_through_member_table(option, kind, expected):
    table = MemberTable(ack_option=option, rekey_transport="unicast")
    table.register("gm", kind)
    assert describe_kek_attribute(table.kek_ack_requested("gm")) == expected


def test_table1_has_exactly_the_seed_rows_and_columns():
    assert set(policy.KEK_ACK_REQUESTED_TABLE) == set(SEED_TABLE_1)
    for row in policy.KEK_ACK_REQUESTED_TABLE.values():
        assert set(row) == set(TABLE_1_COLUMNS)


@pytest.mark.parametrize("option,kind,expected", TABLE_2_CELLS)
def test_table2_every_cell(option, kind, expected):
    assert policy.ack_accepted(option, kind) == (expected == "Yes")


@pytest.mark.parametrize("option,kind,expected", TABLE_2_CELLS)
def test_table2_cell_through_member_table(option, kind, expected):
    table = MemberTable(ack_option=option, rekey_transport="unicast")
    table.register("gm", "non-cisco")
    table.rekey_sent(7)
    result = table.ack_received("gm", 7, kind=kind, hash_valid=True)
    if expected == "Yes":
        assert result.recorded and not result.is_error
        assert table.member("gm").last_acked_seq == 7
    else:
        assert result.status is AckStatus.WRONG_ACK_KIND
        assert result.is_error and not result.recorded
        assert table.member("gm").last_acked_seq is None


def test_table2_has_exactly_the_seed_rows_and_columns():
    assert set(policy.ACK_ACCEPTANCE_TABLE) == set(SEED_TABLE_2)
    for row in policy.ACK_ACCEPTANCE_TABLE.values():
        assert set(row) == set(TABLE_2_COLUMNS)


@pytest.mark.parametrize("call", [
    lambda: policy.kek_ack_requested("both", "cisco"),
    lambda: policy.kek_ack_requested("any", "juniper"),
    lambda: policy.ack_accepted("Cisco", "cisco"),
    lambda: policy.ack_accepted("any", "i-d"),
])
def test_tables_reject_unknown_names(call):
    with pytest.raises(ValueError, match="unknown"):
        call()


# -- Activation Time Delay -----------------------------------------------------------------

@pytest.mark.parametrize("remaining,expected", [
    (0, 1),  # max(max(0, 30) - 30, 1)
    (1, 1),
    (29, 1),
    (30, 1),  # max(0, 1)
    (31, 1),  # max(1, 1)
    (32, 2),  # first value above the floor
    (44710, 44680),  # the seed's "Remaining Lifetime : 44710 secs"
    (86400, 86370),  # a full day, the seed's group rekey lifetime
    (10 ** 9, 10 ** 9 - 30),
])
def test_atd_formula_edges(remaining, expected):
    assert policy.activation_time_delay(remaining) == expected


@pytest.mark.parametrize("bad,error", [
    (-1, ValueError), (30.5, TypeError), ("30", TypeError), (None, TypeError),
    (True, TypeError),
])
def test_atd_rejects_bad_lifetimes(bad, error):
    with pytest.raises(error):
        policy.activation_time_delay(bad)


@pytest.mark.parametrize("kind,gets_atd", [
    ("cisco", False), ("asr9000", True), ("non-cisco", True)])
def test_atd_member_kind_rule(kind, gets_atd):
    assert policy.member_gets_atd(kind) is gets_atd
    expected = 60 if gets_atd else None
    assert policy.atd_for_rekey(kind, 90, "unicast") == expected


@pytest.mark.parametrize("kind", ["cisco", "asr9000", "non-cisco"])
def test_atd_never_in_multicast_rekeys(kind):
    assert policy.atd_for_rekey(kind, 90, "multicast") is None


def test_atd_member_kind_unknown():
    with pytest.raises(ValueError, match="member kind"):
        policy.member_gets_atd("asr1000")
    with pytest.raises(ValueError, match="transport"):
        policy.atd_for_rekey("asr9000", 90, "broadcast")


def test_member_table_atd_per_member_and_switch():
    table = MemberTable(rekey_transport="unicast")
    table.register("ios", "cisco")
    table.register("asr", "asr9000")
    table.register("linux", "non-cisco")
    assert table.activation_time_delay("ios", 100) is None
    assert table.activation_time_delay("asr", 100) == 70
    assert table.activation_time_delay("linux", 10) == 1
    assert table.activation_time_delay("linux", 100, transport="multicast") is None
    off = MemberTable(rekey_transport="unicast", activation_time_delay_enabled=False)
    off.register("linux", "non-cisco")
    assert off.activation_time_delay("linux", 100) is None


# -- ACK bookkeeping -------------------------------------------------------------------------

def unicast_table(option="interoperable", members=(("gm1", "non-cisco"),)):
    table = MemberTable(ack_option=option, rekey_transport="unicast")
    for member_id, kind in members:
        table.register(member_id, kind)
    return table


def test_valid_ack_is_recorded():
    table = unicast_table()
    assert table.rekey_sent(5) == ["gm1"]
    result = table.ack_received("gm1", 5, kind="rfc8263", hash_valid=True)
    assert result.status is AckStatus.RECORDED and result.recorded
    assert (result.member_id, result.seq) == ("gm1", 5)
    status = table.member("gm1")
    assert status.last_acked_seq == 5 and status.awaiting_ack_seq is None


def test_tampered_hash_is_reported_and_not_recorded():
    table = unicast_table()
    table.rekey_sent(5)
    result = table.ack_received("gm1", 5, kind="rfc8263", hash_valid=False)
    assert result.status is AckStatus.BAD_HASH and result.is_error
    assert "HASH" in result.detail
    assert table.member("gm1").last_acked_seq is None
    # The genuine ACK that follows is still recorded.
    assert table.ack_received("gm1", 5, kind="rfc8263", hash_valid=True).recorded


def test_stale_seq_is_reported_and_not_recorded():
    table = unicast_table()
    table.rekey_sent(5)
    table.rekey_sent(6)
    result = table.ack_received("gm1", 5, kind="rfc8263", hash_valid=True)
    assert result.status is AckStatus.STALE_SEQ and result.is_error
    assert "5" in result.detail and "6" in result.detail
    assert table.member("gm1").last_acked_seq is None


def test_future_seq_is_reported_and_not_recorded():
    table = unicast_table()
    table.rekey_sent(5)
    result = table.ack_received("gm1", 9, kind="rfc8263", hash_valid=True)
    assert result.status is AckStatus.UNEXPECTED_SEQ and result.is_error
    assert table.member("gm1").last_acked_seq is None


def test_ack_before_any_rekey_is_unexpected():
    table = unicast_table()
    result = table.ack_received("gm1", 0, kind="rfc8263", hash_valid=True)
    assert result.status is AckStatus.UNEXPECTED_SEQ


def test_unknown_member_is_reported():
    table = unicast_table()
    table.rekey_sent(5)
    result = table.ack_received("10.9.9.9", 5, kind="rfc8263", hash_valid=True)
    assert result.status is AckStatus.UNKNOWN_MEMBER and result.is_error
    assert "10.9.9.9" in result.detail
    assert table.active_members == ["gm1"]


@pytest.mark.parametrize("option,wrong_kind", [("cisco", "rfc8263"),
                                                ("interoperable", "cisco")])
def test_wrong_ack_kind_is_an_error_even_with_a_good_hash(option, wrong_kind):
    table = unicast_table(option)
    table.rekey_sent(5)
    result = table.ack_received("gm1", 5, kind=wrong_kind, hash_valid=True)
    assert result.status is AckStatus.WRONG_ACK_KIND and result.is_error
    assert option in result.detail
    assert table.member("gm1").last_acked_seq is None


def test_duplicate_ack_is_ignored_not_an_error():
    table = unicast_table()
    table.rekey_sent(5)
    assert table.ack_received("gm1", 5, kind="rfc8263", hash_valid=True).recorded
    before = table.member("gm1")
    again = table.ack_received("gm1", 5, kind="rfc8263", hash_valid=True)
    assert again.status is AckStatus.DUPLICATE
    assert not again.recorded and not again.is_error
    assert table.member("gm1") == before


def test_any_option_accepts_both_kinds_from_different_members():
    table = unicast_table("any", members=(("ios", "cisco"), ("linux", "non-cisco")))
    table.rekey_sent(3)
    assert table.ack_received("ios", 3, kind="cisco", hash_valid=True).recorded
    assert table.ack_received("linux", 3, kind="rfc8263", hash_valid=True).recorded


def test_ack_argument_shape_errors_are_exceptions():
    table = unicast_table()
    table.rekey_sent(1)
    with pytest.raises(ValueError, match="ACK kind"):
        table.ack_received("gm1", 1, kind="i-d", hash_valid=True)
    with pytest.raises(TypeError, match="hash_valid"):
        table.ack_received("gm1", 1, kind="rfc8263", hash_valid=b"\x00" * 32)
    with pytest.raises(ValueError, match="SEQ"):
        table.ack_received("gm1", -1, kind="rfc8263", hash_valid=True)


def test_three_strikes_removal_exactly_at_the_third_unacked_unicast_rekey():
    table = unicast_table(members=(("gm1", "non-cisco"), ("gm2", "non-cisco")))
    for seq in (1, 2, 3):
        assert table.rekey_sent(seq) == ["gm1", "gm2"]
        table.ack_received("gm2", seq, kind="rfc8263", hash_valid=True)
        removals = table.close_ack_window()
        if seq < 3:
            assert removals == [] and table.member("gm1").active
            assert table.member("gm1").unacked_seqs == tuple(range(1, seq + 1))
    assert [r.member_id for r in removals] == ["gm1"]
    assert removals[0].unacked_seqs == (1, 2, 3)
    assert "3 consecutive unicast rekeys" in removals[0].reason
    assert table.removed == removals
    assert table.active_members == ["gm2"]
    assert table.rekey_sent(4) == ["gm2"]  # no further unicast rekeys to gm1
    assert table.rekey_sent(5) == ["gm2"]
    assert len(table.removed) == 1  # and it is not removed again


def test_next_rekey_closes_the_window_so_the_fourth_send_skips_the_member():
    table = unicast_table()
    table.rekey_sent(1)
    table.rekey_sent(2)
    assert table.rekey_sent(3) == ["gm1"]  # two strikes so far: still sent to
    assert table.member("gm1").unacked_seqs == (1, 2)
    assert table.rekey_sent(4) == []  # closing SEQ 3 was the third strike
    assert table.removed[0].unacked_seqs == (1, 2, 3)


def test_an_ack_in_between_resets_the_count():
    table = unicast_table()
    table.rekey_sent(1)
    table.rekey_sent(2)
    assert table.ack_received("gm1", 2, kind="rfc8263", hash_valid=True).recorded
    assert table.member("gm1").unacked_seqs == ()
    for seq in (3, 4, 5):
        table.rekey_sent(seq)
    assert table.close_ack_window()[0].unacked_seqs == (3, 4, 5)


def test_rejected_acks_do_not_reset_the_count():
    table = unicast_table()
    table.rekey_sent(1)
    table.rekey_sent(2)
    table.ack_received("gm1", 2, kind="rfc8263", hash_valid=False)
    table.ack_received("gm1", 2, kind="cisco", hash_valid=True)
    table.rekey_sent(3)
    assert [r.member_id for r in table.close_ack_window()] == ["gm1"]


def test_late_ack_for_the_last_seq_is_recorded_and_resets_the_count():
    table = unicast_table()
    table.rekey_sent(1)
    table.rekey_sent(2)
    table.close_ack_window()
    assert table.member("gm1").unacked_seqs == (1, 2)
    assert table.ack_received("gm1", 2, kind="rfc8263", hash_valid=True).recorded
    assert table.member("gm1").unacked_seqs == ()


def test_multicast_rekeys_never_count():
    table = unicast_table()
    for seq in range(1, 11):
        assert table.rekey_sent(seq, transport="multicast") == ["gm1"]
        assert table.close_ack_window() == []
    status = table.member("gm1")
    assert status.active and status.unacked_seqs == () and status.awaiting_ack_seq is None


def test_multicast_rekeys_neither_count_nor_reset_the_unicast_streak():
    table = unicast_table()
    table.rekey_sent(1)
    table.rekey_sent(2, transport="multicast")
    table.rekey_sent(3)
    table.rekey_sent(4, transport="multicast")
    assert table.member("gm1").unacked_seqs == (1, 3)
    table.rekey_sent(5)
    assert [r.unacked_seqs for r in table.close_ack_window()] == [(1, 3, 5)]


def test_ack_of_a_multicast_rekey_is_unexpected():
    table = unicast_table()
    table.rekey_sent(1, transport="multicast")
    result = table.ack_received("gm1", 1, kind="rfc8263", hash_valid=True)
    assert result.status is AckStatus.UNEXPECTED_SEQ and "multicast" in result.detail


def test_default_transport_comes_from_the_table():
    table = MemberTable(ack_option="interoperable", rekey_transport="multicast")
    table.register("gm1", "non-cisco")
    for seq in (1, 2, 3, 4):
        table.rekey_sent(seq)
    assert table.removed == [] and table.kek_ack_requested("gm1") is None


def test_removed_member_ack_is_reported_and_reregistration_starts_afresh():
    table = unicast_table()
    for seq in (1, 2, 3):
        table.rekey_sent(seq)
    table.close_ack_window()
    result = table.ack_received("gm1", 3, kind="rfc8263", hash_valid=True)
    assert result.status is AckStatus.REMOVED_MEMBER and result.is_error
    table.register("gm1", "non-cisco")
    assert table.member("gm1").unacked_seqs == ()
    assert table.rekey_sent(4) == ["gm1"]
    assert table.ack_received("gm1", 4, kind="rfc8263", hash_valid=True).recorded


def test_member_registered_after_a_rekey_owes_no_ack_for_it():
    table = unicast_table()
    table.rekey_sent(1)
    table.register("gm2", "cisco")
    assert table.ack_received("gm2", 1, kind="rfc8263",
                              hash_valid=True).status is AckStatus.UNEXPECTED_SEQ
    table.rekey_sent(2)
    assert table.member("gm2").unacked_seqs == ()


@pytest.mark.parametrize("seqs", [(5, 5), (5, 4)])
def test_rekey_seq_must_grow(seqs):
    table = unicast_table()
    table.rekey_sent(seqs[0])
    with pytest.raises(ValueError, match="not above"):
        table.rekey_sent(seqs[1])


def test_member_table_argument_errors():
    with pytest.raises(ValueError, match="ACK option"):
        MemberTable(ack_option="rfc8263")
    with pytest.raises(ValueError, match="transport"):
        MemberTable(rekey_transport="anycast")
    table = unicast_table()
    with pytest.raises(ValueError, match="member kind"):
        table.register("gm9", "cisco-asr9000")
    with pytest.raises(ValueError, match="transport"):
        table.rekey_sent(1, transport="broadcast")
    with pytest.raises(KeyError):
        table.member("nobody")


def test_member_table_from_config():
    cfg, = parse_config("crypto gkm group G\n server local\n  rekey transport unicast\n"
                        "  rekey acknowledgement any\n  rekey activation-time-delay\n")
    table = MemberTable.from_config(cfg)
    assert (table.ack_option, table.rekey_transport) == ("any", "unicast")
    table.register("asr", "asr9000")
    assert table.activation_time_delay("asr", 40) == 10
    no_atd = MemberTable.from_config(parse_config("crypto gkm group G\n server local\n")[0])
    no_atd.register("asr", "asr9000")
    assert no_atd.activation_time_delay("asr", 40) is None
    member_cfg, = parse_config("crypto gkm group G\n server address ipv4 10.0.8.1\n")
    with pytest.raises(ValueError, match="not a key-server group"):
        MemberTable.from_config(member_cfg)


# -- Configuration: the seed's examples -----------------------------------------------------

SEED_KS_D3P = """\
Device> enable
Device# configure terminal
Device(config)# crypto gkm group GETVPN
Device(config-gkm-group)# server local
Device(gdoi-local-server)# sa d3p window msec 5000
Device(gdoi-local-server)# exit
"""

SEED_REKEY_ACK = """\
Device> enable
Device# configure terminal
Device(config)# crypto gkm group GET
Device(config-gkm-group)# server local
Device(gdoi-local-server)# rekey acknowledgment interoperable
Device(gdoi-local-server)# exit
"""

# The seed's "Enabling IP-D3P on a Group Member" steps (3: crypto gkm group, 4: client d3p).
SEED_GM_D3P_STEPS = """\
Device> enable
Device# configure terminal
Device(config)# crypto gkm group GETVPN
Device(config-gkm-group)# client d3p window sec 50
Device(gdoi-local-server)# exit
"""

# The seed's short "Example: Enabling IP-D3P on a Group Member" leaves out the group line.
SEED_GM_D3P_SHORT = """\
Device> enable
Device# configure terminal
Device(config-gkm-group)# client d3p window sec 50
Device(gdoi-local-server)# exit
"""


def test_seed_example_ks_d3p():
    cfg, = parse_config(SEED_KS_D3P)
    assert (cfg.name, cfg.role, cfg.d3p_window_ms) == ("GETVPN", "key-server", 5000)
    assert cfg.ack_option == "cisco" and cfg.features == frozenset()


def test_seed_example_rekey_ack_with_acknowledgment_spelling():
    cfg, = parse_config(SEED_REKEY_ACK)
    assert (cfg.name, cfg.role, cfg.ack_option) == ("GET", "key-server", "interoperable")
    assert cfg.d3p_window_ms is None


def test_seed_example_member_d3p_and_effective_window():
    cfg, = parse_config(SEED_GM_D3P_STEPS)
    assert (cfg.name, cfg.role, cfg.client_d3p_window_ms) == ("GETVPN", "member", 50000)
    # Seed: KS `d3p window msec 1000` + member `client d3p window sec 50` -> 50000.
    ks, = parse_config("crypto gkm group GETVPN\n server local\n  sa d3p window msec 1000\n")
    assert cfg.effective_d3p_window_ms(ks.d3p_window_ms) == 50000


def test_seed_short_member_example_lacks_its_group_line():
    with pytest.raises(ConfigError) as info:
        parse_config(SEED_GM_D3P_SHORT)
    assert info.value.lineno == 3
    assert info.value.line == "Device(config-gkm-group)# client d3p window sec 50"
    assert "unknown command in config mode" in info.value.message


def test_seed_acknowledgement_spelling_too():
    cfg, = parse_config("crypto gkm group GET\n server local\n  rekey acknowledgement any\n")
    assert cfg.ack_option == "any"


@pytest.mark.parametrize("option", ["cisco", "interoperable", "any"])
def test_no_rekey_acknowledgement_restores_cisco(option):
    text = ("crypto gkm group G\n server local\n  rekey acknowledgement %s\n"
            "  no rekey acknowledgement\n" % option)
    assert parse_config(text)[0].ack_option == "cisco"


@pytest.mark.parametrize("lines,attribute,expected", [
    (("  sa d3p window msec 5000", "  no sa d3p window"), "d3p_window_ms", None),
    (("  sa d3p window msec 5000", "  no sa d3p window msec 5000"), "d3p_window_ms", None),
    (("  rekey transport unicast", "  no rekey transport unicast"), "rekey_transport",
     "multicast"),
    (("  rekey acknowledgement any", "  no rekey acknowledgment any"), "ack_option", "cisco"),
    (("  rekey activation-time-delay", "  no rekey activation-time-delay"), "features",
     frozenset()),
    (("  sa ipsec 1", "  exit", "  no sa ipsec 1"), "ipsec_sas", ()),
    (("  sa ipsec 1", "   tag cts sgt", "   no tag cts sgt"), "features", frozenset()),
])
def test_no_forms_undo(lines, attribute, expected):
    cfg, = parse_config("crypto gkm group G\n server local\n" + "\n".join(lines) + "\n")
    assert getattr(cfg, attribute) == expected


def test_no_client_d3p_window_undoes_the_override():
    text = "crypto gkm group G\n client d3p window sec 50\n no client d3p window sec 50\n"
    assert parse_config(text)[0].client_d3p_window_ms is None


@pytest.mark.parametrize("line,words", [
    ("  no sa d3p window banana", "sec N | msec N"),
    ("  no sa d3p window sec 500", "out of range"),
    ("  no rekey acknowledgement sometimes", "cisco | interoperable | any"),
    ("  no cisco-metadata now", "takes no arguments"),
])
def test_no_forms_with_bad_arguments(line, words):
    with pytest.raises(ConfigError) as info:
        parse_config("crypto gkm group G\n server local\n" + line + "\n")
    assert info.value.lineno == 3 and words in info.value.message


def test_running_config_style_full_key_server():
    text = """\
!
crypto gkm group GETVPN
 identity number 1234
 server local
  rekey algorithm aes 128
  rekey lifetime seconds 86400
  rekey retransmit 10 number 2
  rekey authentication mypubkey rsa mykeys
  rekey transport unicast
  rekey acknowledgement interoperable
  sa ipsec 1
   profile gdoi-p
   match address ipv4 getvpn-acl
   replay time window-size 5
  sa d3p window sec 10
  address ipv4 10.0.8.1
  redundancy
!
"""
    cfg, = parse_config(text)
    assert cfg == GroupConfig(
        name="GETVPN", role="key-server", d3p_window_ms=10000, client_d3p_window_ms=None,
        ack_option="interoperable", rekey_transport="unicast", ipsec_sas=(1,),
        features=frozenset(),
        other_lines=((3, "identity number 1234"), (5, "rekey algorithm aes 128"),
                     (6, "rekey lifetime seconds 86400"), (7, "rekey retransmit 10 number 2"),
                     (8, "rekey authentication mypubkey rsa mykeys"),
                     (12, "profile gdoi-p"), (13, "match address ipv4 getvpn-acl"),
                     (14, "replay time window-size 5"), (16, "address ipv4 10.0.8.1"),
                     (17, "redundancy")))
    assert cfg.ack_in_use == "interoperable"


def test_member_group_with_server_address():
    text = ("crypto gkm group GETVPN\n identity number 1234\n"
            " server address ipv4 10.0.8.1\n client d3p window msec 100\n")
    cfg, = parse_config(text)
    assert (cfg.role, cfg.client_d3p_window_ms) == ("member", 100)
    assert (3, "server address ipv4 10.0.8.1") in cfg.other_lines


def test_several_groups_and_reentering_a_group():
    text = ("crypto gkm group A\n server local\n  sa d3p window msec 200\n"
            "crypto gdoi group B\n client d3p window sec 3\n"
            "crypto gkm group A\n server local\n  rekey transport unicast\n")
    a, b = parse_config(text)
    assert (a.name, a.d3p_window_ms, a.rekey_transport) == ("A", 200, "unicast")
    assert (b.name, b.client_d3p_window_ms) == ("B", 3000)


def test_no_crypto_gkm_group_forgets_the_group():
    text = "crypto gkm group A\n server local\nno crypto gkm group A\ncrypto gkm group B\n"
    assert [g.name for g in parse_config(text)] == ["B"]


def test_exit_and_end_move_between_modes():
    # After `exit` from the SA, `tag cts sgt` is no longer valid anywhere above it.
    text = "crypto gkm group G\n server local\n  sa ipsec 1\n  exit\n  tag cts sgt\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.lineno == 5
    text = "crypto gkm group G\n server local\nend\nsa d3p window sec 5\n"
    with pytest.raises(ConfigError, match="line 4"):
        parse_config(text)


def test_empty_text_gives_no_groups():
    assert parse_config("") == []
    assert parse_config("! nothing\n\n   \n") == []


# -- Configuration: ranges -----------------------------------------------------------------

@pytest.mark.parametrize("unit,value,expected_ms", [
    ("sec", 0, None), ("sec", 1, 1000), ("sec", 100, 100000), ("sec", 101, None),
    ("msec", 99, None), ("msec", 100, 100), ("msec", 10000, 10000), ("msec", 10001, None),
])
@pytest.mark.parametrize("command", ["ks", "member"])
def test_window_range_edges(command, unit, value, expected_ms):
    if command == "ks":
        text = "crypto gkm group G\n server local\n  sa d3p window %s %d\n" % (unit, value)
    else:
        text = "crypto gkm group G\n client d3p window %s %d\n" % (unit, value)
    if expected_ms is None:
        with pytest.raises(ConfigError) as info:
            parse_config(text)
        assert info.value.lineno == text.count("\n")
        assert "out of range" in info.value.message and str(value) in info.value.message
    else:
        cfg, = parse_config(text)
        got = cfg.d3p_window_ms if command == "ks" else cfg.client_d3p_window_ms
        assert got == expected_ms


@pytest.mark.parametrize("unit,value", [("sec", 0), ("sec", 101), ("msec", 99),
                                        ("msec", 10001), ("min", 1)])
def test_d3p_window_to_ms_rejects(unit, value):
    with pytest.raises(ValueError):
        policy.d3p_window_to_ms(unit, value)


def test_d3p_window_to_ms_rejects_non_int():
    with pytest.raises(TypeError):
        policy.d3p_window_to_ms("sec", 1.5)


# -- Configuration: restrictions ---------------------------------------------------------

KS_HEAD = "crypto gkm group G\n server local\n"  # lines 1-2


@pytest.mark.parametrize("feature_lines,words", [
    (["  cisco-metadata"], "Cisco metadata"),
    (["  gm error-detection"], "GM error detection"),
    (["  sa ipsec 1", "   tag cts sgt"], "inline tagging"),
])
def test_d3p_after_an_incompatible_feature(feature_lines, words):
    text = KS_HEAD + "\n".join(feature_lines) + "\n  sa d3p window msec 5000\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.lineno == 3 + len(feature_lines)
    assert info.value.line == "  sa d3p window msec 5000"
    assert words in info.value.message and "line %d" % (2 + len(feature_lines)) in str(info.value)


@pytest.mark.parametrize("feature_lines,words", [
    (["  cisco-metadata"], "Cisco metadata"),
    (["  gm error-detection"], "GM error detection"),
    (["  sa ipsec 1", "   tag cts sgt"], "inline tagging"),
])
def test_incompatible_feature_after_d3p(feature_lines, words):
    text = KS_HEAD + "  sa d3p window sec 5\n" + "\n".join(feature_lines) + "\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.lineno == 3 + len(feature_lines)
    assert words in info.value.message and "IP-D3P (enabled at line 3)" in info.value.message


@pytest.mark.parametrize("disable", ["  no cisco-metadata", "  no gm error-detection"])
def test_switching_features_after_disabling_is_fine(disable):
    feature = disable.replace("no ", "")
    text = KS_HEAD + feature + "\n" + disable + "\n  sa d3p window sec 5\n"
    cfg, = parse_config(text)
    assert cfg.d3p_window_ms == 5000 and cfg.features == frozenset()
    text = KS_HEAD + "  sa d3p window sec 5\n  no sa d3p window\n" + feature + "\n"
    cfg, = parse_config(text)
    assert cfg.d3p_window_ms is None and len(cfg.features) == 1


def test_tagging_removed_with_its_sa_allows_d3p():
    text = KS_HEAD + "  sa ipsec 1\n   tag cts sgt\n  no sa ipsec 1\n  sa d3p window sec 5\n"
    cfg, = parse_config(text)
    assert cfg.ipsec_sas == () and cfg.d3p_window_ms == 5000


def test_features_are_reported():
    text = KS_HEAD + ("  cisco-metadata\n  gm error-detection\n  sa ipsec 3\n   tag cts sgt\n"
                      "  rekey activation-time-delay\n")
    cfg, = parse_config(text)
    assert cfg.features == {"cisco-metadata", "gm-error-detection", "inline-tagging",
                            "activation-time-delay"}
    assert cfg.ipsec_sas == (3,)


def test_atd_with_a_second_ipsec_sa():
    text = KS_HEAD + "  rekey activation-time-delay\n  sa ipsec 1\n  sa ipsec 2\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.lineno == 5
    assert "single IPsec SA" in info.value.message
    assert "'sa ipsec 1' (line 4)" in info.value.message


def test_atd_after_two_ipsec_sas():
    text = KS_HEAD + "  sa ipsec 1\n  sa ipsec 2\n  rekey activation-time-delay\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.lineno == 5 and "single IPsec SA" in info.value.message


def test_atd_with_one_sa_reentered_is_fine():
    text = KS_HEAD + "  rekey activation-time-delay\n  sa ipsec 1\n  exit\n  sa ipsec 1\n"
    assert parse_config(text)[0].ipsec_sas == (1,)


def test_multiple_sas_without_atd_are_fine():
    cfg, = parse_config(KS_HEAD + "  sa ipsec 1\n  sa ipsec 2\n")
    assert cfg.ipsec_sas == (1, 2)


def test_key_server_and_member_in_one_group():
    with pytest.raises(ConfigError) as info:
        parse_config(KS_HEAD + " client d3p window sec 5\n")
    assert info.value.lineno == 3 and "server local' at line 2" in info.value.message
    with pytest.raises(ConfigError) as info:
        parse_config("crypto gkm group G\n server address ipv4 10.0.0.1\n server local\n")
    assert info.value.lineno == 3 and "member (line 2)" in info.value.message


# -- Configuration: unknown and malformed lines ------------------------------------------

@pytest.mark.parametrize("line,words", [
    ("hostname R1", "unknown command"),
    ("crypto gkm grup G", "unknown command"),
    ("  sa d3p windw msec 500", "unknown command"),
    ("  rekey acknowledgement", "cisco | interoperable | any"),
    ("  rekey acknowledgement rfc8263", "cisco | interoperable | any"),
    ("  rekey acknowledgement any cisco", "cisco | interoperable | any"),
    ("  rekey transport multicast", "rekey transport unicast"),
    ("  sa d3p window", "sec N | msec N"),
    ("  sa d3p window 5000", "sec N | msec N"),
    ("  sa d3p window usec 5000", "sec N | msec N"),
    ("  sa d3p window msec 5000 extra", "sec N | msec N"),
    ("  sa d3p window msec 5e3", "not a whole number"),
    ("  sa d3p window sec -5", "not a whole number"),
    ("  sa ipsec", "sa ipsec N"),
    ("  sa ipsec one", "sa ipsec N"),
    ("  sa ipsec 0", "out of range"),
    ("  sa ipsec 65536", "out of range"),
    ("  cisco-metadata on", "takes no arguments"),
    ("  rekey activation-time-delay 30", "takes no arguments"),
    ("  no server local", "not supported"),
    ("  no rekey lifetime", "not supported"),
    (" no server address ipv4 10.0.0.1", "not supported"),
    ("no", "'no' needs a command"),
    (" server address 10.0.0.1", "server address ipv4"),
])
def test_bad_lines_are_reported_with_number_and_text(line, words):
    text = KS_HEAD + line + "\n" if line.startswith("  ") else "crypto gkm group G\n" + line + "\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    lineno = text.count("\n")
    assert info.value.lineno == lineno
    assert info.value.line == line
    assert words in info.value.message
    assert str(info.value).startswith("line %d: %r: " % (lineno, line))


def test_group_name_must_be_one_word():
    with pytest.raises(ConfigError, match="one word"):
        parse_config("crypto gkm group GET VPN1\n")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_parse_config_needs_text():
    with pytest.raises(TypeError):
        parse_config(b"crypto gkm group G\n")


# -- Effective D3P window on a member -------------------------------------------------------

@pytest.mark.parametrize("ks_ms,client_ms,expected", [
    (1000, 50000, 50000),  # the seed's example
    (5000, None, 5000),  # no override: the key server's window
    (None, 50000, None),  # key server announced no D3P
    (None, None, None),
])
def test_effective_window(ks_ms, client_ms, expected):
    assert policy.effective_d3p_window_ms(ks_ms, client_ms) == expected


def test_asr9000_cannot_override_the_window():
    assert policy.effective_d3p_window_ms(5000, None, "asr9000") == 5000
    with pytest.raises(ValueError, match="ASR 9000"):
        policy.effective_d3p_window_ms(5000, 50000, "asr9000")


@pytest.mark.parametrize("ks_ms,client_ms", [(0, None), (-5, None), (5000, 0), ("5000", None)])
def test_effective_window_bad_values(ks_ms, client_ms):
    with pytest.raises((ValueError, TypeError)):
        policy.effective_d3p_window_ms(ks_ms, client_ms)


def test_effective_window_is_a_member_question():
    ks, = parse_config(SEED_KS_D3P)
    with pytest.raises(ValueError, match="key server"):
        ks.effective_d3p_window_ms(5000)


# -- Cooperative key servers ---------------------------------------------------------------

# Typed from the seed; the second one is a single line there (wrapped by the page layout).
SEED_D3P_MISMATCH = ("%GDOI-3-COOP_CONFIG_MISMATCH: WARNING: IP-D3P configuration between "
                     "Primary KS and Secondary KS are mismatched")
SEED_ACK_MISMATCH = ("%GDOI-3-COOP_CONFIG_MISMATCH: WARNING: Interoperable Rekey ACK "
                     "configuration between Primary KS and Secondary KS are mismatched")


def ks_config(*lines, transport="unicast"):
    # ACKs exist only with unicast rekeys; multicast is the IOS default.
    lines = lines + (("rekey transport unicast",) if transport == "unicast" else ())
    text = "crypto gkm group GETVPN\n server local\n" + "".join("  %s\n" % l for l in lines)
    return parse_config(text)[0]


def test_coop_constants_are_the_seed_strings():
    assert policy.COOP_D3P_MISMATCH == SEED_D3P_MISMATCH
    assert policy.COOP_ACK_MISMATCH == SEED_ACK_MISMATCH


@pytest.mark.parametrize("primary,secondary,expected", [
    (("sa d3p window msec 5000",), ("sa d3p window sec 5",), []),
    ((), (), []),
    (("rekey acknowledgement interoperable",), ("rekey acknowledgment interoperable",), []),
    (("sa d3p window msec 5000",), ("sa d3p window msec 4000",), [SEED_D3P_MISMATCH]),
    (("sa d3p window msec 5000",), (), [SEED_D3P_MISMATCH]),
    ((), ("sa d3p window msec 5000",), [SEED_D3P_MISMATCH]),
    (("rekey acknowledgement interoperable",), (), [SEED_ACK_MISMATCH]),
    (("rekey acknowledgement any",), ("rekey acknowledgement cisco",), [SEED_ACK_MISMATCH]),
    ((), ("rekey acknowledgement interoperable",), [SEED_ACK_MISMATCH]),
    (("sa d3p window sec 1", "rekey acknowledgement interoperable"), ("sa d3p window sec 2",),
     [SEED_D3P_MISMATCH, SEED_ACK_MISMATCH]),
])
def test_coop_mismatch_from_configs(primary, secondary, expected):
    announcement = CoopAnnouncement.from_config(ks_config(*primary))
    assert policy.coop_config_mismatches(announcement, ks_config(*secondary)) == expected


def test_coop_multicast_groups_announce_no_ack_request():
    # Review finding: the announcement carried KEK_ACK_REQUESTED for a multicast group,
    # whose KEK SA carries none (no ACK is expected with multicast rekeys).
    for option in ("interoperable", "any", "cisco"):
        config = ks_config("rekey acknowledgement " + option, transport="multicast")
        assert CoopAnnouncement.from_config(config).kek_ack_requested is None
        table = policy.MemberTable.from_config(config)
        table.register("10.0.0.1", "non-cisco")
        assert table.kek_ack_requested("10.0.0.1") is None
    unicast = CoopAnnouncement.from_config(ks_config("rekey acknowledgement interoperable"))
    assert unicast.kek_ack_requested == KEK_ACK_SHA256
    primary = ks_config("rekey acknowledgement interoperable", transport="multicast")
    secondary = ks_config("rekey acknowledgement cisco", transport="multicast")
    assert policy.coop_config_mismatches(CoopAnnouncement.from_config(primary),
                                         secondary) == []


def test_coop_interoperable_and_any_look_the_same_on_the_wire():
    announcement = CoopAnnouncement.from_config(ks_config("rekey acknowledgement any"))
    secondary = ks_config("rekey acknowledgement interoperable")
    assert policy.coop_config_mismatches(announcement, secondary) == []


def test_coop_from_wire_values():
    from scapy_gdoi._consts import D3P_TS_POSIX_TIME_MSEC, KEK_ACK_SHA256, KEK_ACK_SHA384
    secondary = ks_config("sa d3p window msec 5000", "rekey acknowledgement interoperable")
    good = CoopAnnouncement(D3P_TS_POSIX_TIME_MSEC, 5000, KEK_ACK_SHA256)
    assert policy.coop_config_mismatches(good, secondary) == []
    other_hash = CoopAnnouncement(D3P_TS_POSIX_TIME_MSEC, 5000, KEK_ACK_SHA384)
    assert policy.coop_config_mismatches(other_hash, secondary) == [SEED_ACK_MISMATCH]
    other_type = CoopAnnouncement(2, 5000, KEK_ACK_SHA256)
    assert policy.coop_config_mismatches(other_type, secondary) == [SEED_D3P_MISMATCH]


def test_coop_needs_key_server_groups():
    member = parse_config("crypto gkm group GETVPN\n client d3p window sec 5\n")[0]
    with pytest.raises(ValueError):
        CoopAnnouncement.from_config(member)
    with pytest.raises(ValueError):
        policy.coop_config_mismatches(CoopAnnouncement(), member)


# -- show renderers ------------------------------------------------------------------------

def test_show_ks_replay_matches_the_seed_sample():
    assert policy.render_ks_replay(parse_config(SEED_KS_D3P)) == (
        "Anti-replay Information For Group GETVPN:\n"
        "  IP-D3P: Type = POSIX-TIME-MSEC, Window-size = 5000 msec")


def test_show_ks_replay_seconds_are_shown_in_msec_and_groups_in_order():
    configs = parse_config("crypto gkm group A\n server local\n  sa d3p window sec 50\n"
                           "crypto gkm group M\n client d3p window sec 5\n"
                           "crypto gkm group B\n server local\n")
    assert policy.render_ks_replay(configs) == (
        "Anti-replay Information For Group A:\n"
        "  IP-D3P: Type = POSIX-TIME-MSEC, Window-size = 50000 msec\n"
        "Anti-replay Information For Group B:")
    assert policy.render_ks_replay(configs[0]) == policy.render_ks_replay(configs[:1])


@pytest.mark.parametrize("option,label", [
    ("cisco", "Cisco"), ("interoperable", "Interoperable"), ("any", "Any")])
def test_show_acknowledgement_lines_unicast(option, label):
    cfg = ks_config("rekey transport unicast", "rekey acknowledgement " + option)
    assert policy.render_gkm_ack_line(cfg) == "    Acknowledgement Cfg : " + label
    assert policy.render_ks_ack_line(cfg) == "  Rekey Acknowledgement Cfg: " + label
    assert policy.render_ks_rekey_ack(cfg) == (
        "Group GETVPN (Unicast)\n  Acknowledgement Type In-Use      : " + label)
    assert policy.render_kek_policy_ack(cfg) == (
        "KEK POLICY (transport type : Unicast)\n  acknowledgement    : " + option)


def test_show_acknowledgement_lines_multicast():
    cfg = ks_config("rekey acknowledgement interoperable", transport="multicast")
    assert cfg.ack_in_use is None
    assert policy.render_ks_ack_line(cfg) == "  Rekey Acknowledgement Cfg: Interoperable"
    assert policy.render_ks_rekey_ack(cfg) == (
        "Group GETVPN (Multicast)\n  Acknowledgement Type In-Use      : None")
    assert policy.render_kek_policy_ack(cfg) == (
        "KEK POLICY (transport type : Multicast)\n  acknowledgement    : none")


@pytest.mark.parametrize("render", [policy.render_gkm_ack_line, policy.render_ks_ack_line,
                                    policy.render_ks_rekey_ack, policy.render_kek_policy_ack])
def test_show_acknowledgement_needs_a_key_server(render):
    member, = parse_config(SEED_GM_D3P_STEPS)
    with pytest.raises(ValueError, match="not a key-server group"):
        render(member)


def test_module_docstring_example_runs():
    import doctest
    result = doctest.testmod(policy)
    assert result.attempted >= 5 and result.failed == 0
