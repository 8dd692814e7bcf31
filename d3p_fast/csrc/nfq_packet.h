/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_packet.h - what the NFQUEUE loop does to one IP packet, sans-io.
 *
 * D3P directly over IP (DECISIONS.md §3, carriage (a)): the 12-octet D3P
 * header follows the IPv4 header (options included) or the fixed 40-octet
 * IPv6 header, whose protocol / next header is the D3P protocol number
 * (scapy_gdoi/_consts.py D3P_IP_PROTO, passed in by the caller).  Its Next
 * Header is the protocol of what follows (17 for UDP, ...).
 *
 *   enforce: locate the header, run the window check (d3p_window.h), decide
 *            accept/drop, and with strip remove the D3P header in place:
 *            protocol := Next Header, lengths shrink, IPv4 checksum redone.
 *   stamp:   the inverse, for the sender's OUTPUT hook.
 *
 * IPv6 hop-by-hop, routing and destination options headers may come before
 * D3P (ip6tables `-p 253` queues such packets): they are walked, D3P is
 * checked after them, and strip/stamp rewrite the last Next Header field.
 * The D3P header must end inside the packet the IP length declares
 * (trailing link-layer padding does not count).
 *
 * IP fragments (IPv4 MF/offset, an IPv6 fragment header) are refused
 * (malformed): only the first fragment carries the header and shifting it
 * would break the fragment offsets.  In the INPUT hook the kernel has already
 * reassembled (ip_local_deliver), so this only matters in PREROUTING/FORWARD.
 */
#ifndef D3P_FAST_NFQ_PACKET_H
#define D3P_FAST_NFQ_PACKET_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */

enum nfq_packet_result {
    NFQ_PKT_OK = 0,
    NFQ_PKT_NOT_IP = -1,      /* IP version neither 4 nor 6, or bad IHL */
    NFQ_PKT_TRUNCATED = -2,   /* fewer octets than the headers need */
    NFQ_PKT_NOT_D3P = -3,     /* protocol / next header is not the D3P number */
    NFQ_PKT_FRAGMENT = -4,    /* IPv4 fragment */
    NFQ_PKT_TOO_BIG = -5,     /* stamping would exceed the IP length field or the
                                 verdict's payload attribute (0xffff - 4 octets) */
    NFQ_PKT_NO_ROOM = -6,     /* output buffer too small */
    NFQ_PKT_INCOMPLETE = -7   /* we hold only part of the packet (copy range, GSO) */
};

/* Offset of the D3P header (after the IP header and any IPv6 extension
 * headers walked) in a D3P-over-IP packet. */
int nfq_d3p_offset(const uint8_t *pkt, size_t len, uint8_t d3p_proto, size_t *offset);

/* Source address: 4 or 16 octets into addr[16]; *family = 4 or 6 (0 if not IP). */
void nfq_ip_source(const uint8_t *pkt, size_t len, uint8_t *addr, uint8_t *family);

/* Remove the D3P header at d3p_offset, in place: the IP header is moved up
 * over it, so the stripped packet is pkt[*new_start .. *new_start + *new_len).
 * len must be the whole packet (the IP length field must match it). */
int nfq_strip_d3p(uint8_t *pkt, size_t len, size_t d3p_offset, size_t *new_start,
                  size_t *new_len);

/* Insert a 12-octet D3P header (POSIX-TIME-MSEC, now_ms) after the IP header
 * of pkt, writing the result to out; protocol := d3p_proto. */
int nfq_stamp_d3p(const uint8_t *pkt, size_t len, uint8_t d3p_proto, uint64_t now_ms,
                  uint8_t *out, size_t cap, size_t *out_len);

/* Policy of the enforcer for one packet. */
enum nfq_action { NFQ_ACTION_DROP = 0, NFQ_ACTION_COUNT = 1 };

struct nfq_decision {
    int cause;            /* enum d3p_verdict: FRESH, TOO_OLD, TOO_NEW, MALFORMED */
    uint32_t verdict;     /* NFQ_VERDICT_ACCEPT or NFQ_VERDICT_DROP */
    uint64_t peer_time_ms;/* the packet's timestamp (0 when malformed) */
    int modified;         /* 1: the verdict carries pkt[start .. start + len) */
    size_t start;
    size_t len;
    int strip_error;      /* 1: should have been stripped but only part of it is here */
    uint8_t src[16];      /* source address before any rewrite (nfq_ip_source) */
    uint8_t family;       /* 4, 6, or 0 when not IP */
};

/* The enforcer's whole per-packet decision.  pkt/len is what the kernel
 * copied to us; packet_len is the real length (larger when truncated).
 * With strip, a passing D3P packet is rewritten in place (see nfq_strip_d3p).
 * A fresh packet that cannot be stripped because we do not hold all of it is
 * dropped under NFQ_ACTION_DROP (the stack could not deliver it anyway) and
 * passed unchanged under NFQ_ACTION_COUNT. */
void nfq_enforce_packet(uint8_t *pkt, size_t len, size_t packet_len, uint8_t d3p_proto,
                        uint64_t now_ms, uint64_t window_ms, int action, int strip,
                        struct nfq_decision *out);

/* cffi:end */

#endif
