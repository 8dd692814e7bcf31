/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_packet.c - per-packet work of the NFQUEUE loop (see nfq_packet.h).
 *
 * IPv4 header: RFC 791 §3.1 (total length at 2, flags/fragment offset at 6,
 * protocol at 9, checksum at 10).  IPv6 header: RFC 8200 §3 (payload length
 * at 4, next header at 6, 40 octets).
 */
#include "nfq_packet.h"

#include <string.h>

#include "d3p_window.h"
#include "nfq_msg.h"

#define IPV4_MIN_HEADER 20
#define IPV6_HEADER 40
#define IPV4_MAX_LENGTH 0xffff          /* RFC 791 Total Length, 16 bits */
#define IPV6_MAX_PAYLOAD 0xffff         /* RFC 8200 Payload Length, 16 bits */
/* A rewritten packet travels in one NFQA_PAYLOAD attribute, whose 16-bit
 * nla_len counts its own 4-octet header (netlink(7)). */
#define NFQ_MAX_VERDICT_PAYLOAD (0xffff - 4)
#define IPV6_HOP_BY_HOP 0
#define IPV6_ROUTING 43
#define IPV6_FRAGMENT 44
#define IPV6_DEST_OPTIONS 60
/* Bound on the extension headers walked: RFC 8200 §4.1 allows each at most
 * once (destination options twice); more is an attack on the walk. */
#define IPV6_MAX_EXTENSIONS 8

static uint16_t load16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* RFC 791 header checksum: one's complement of the one's complement sum. */
static void ipv4_fix_checksum(uint8_t *hdr, size_t ihl_octets)
{
    uint32_t sum = 0;
    hdr[10] = hdr[11] = 0;
    for (size_t i = 0; i + 1 < ihl_octets; i += 2)
        sum += load16(hdr + i);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    store16(hdr + 10, (uint16_t)~sum);
}

/* Where the headers before D3P (or before the upper layer) end. */
struct ip_layout {
    size_t hdr_len;      /* IP header plus the IPv6 extension headers walked */
    size_t ip_len;       /* packet length the IP header declares */
    size_t next_at;      /* offset of the protocol / Next Header field naming what follows */
    uint8_t proto;       /* that field's value */
};

/* IPv6 extension headers that may precede D3P and that we can walk and
 * rewrite around (RFC 8200 §4.3-4.6: Next Header at 0, Hdr Ext Len at 1 in
 * 8-octet units not counting the first 8).  ip6tables `-p 253` matches a
 * packet whose chain ends in 253 after any of them. */
static int ipv6_skippable(uint8_t next)
{
    return next == IPV6_HOP_BY_HOP || next == IPV6_ROUTING || next == IPV6_DEST_OPTIONS;
}

static int ipv6_walk(const uint8_t *pkt, size_t limit, struct ip_layout *l)
{
    for (int hops = 0; ipv6_skippable(l->proto); hops++) {
        if (hops >= IPV6_MAX_EXTENSIONS)
            return NFQ_PKT_NOT_D3P;
        if (limit - l->hdr_len < 8)
            return NFQ_PKT_TRUNCATED;
        size_t ext_len = ((size_t)pkt[l->hdr_len + 1] + 1) * 8;
        if (limit - l->hdr_len < ext_len)
            return NFQ_PKT_TRUNCATED;
        l->next_at = l->hdr_len;
        l->proto = pkt[l->hdr_len];
        l->hdr_len += ext_len;
    }
    /* A fragment header: only the first fragment carries D3P, and moving it
     * would break the offsets (as for IPv4 fragments). */
    if (l->proto == IPV6_FRAGMENT)
        return NFQ_PKT_FRAGMENT;
    return NFQ_PKT_OK;
}

/* Validates the IP header (and walks IPv6 extension headers) within the
 * octets we hold and the IP length both. */
static int ip_header(const uint8_t *pkt, size_t len, struct ip_layout *l)
{
    if (pkt == NULL || len < 1)
        return NFQ_PKT_TRUNCATED;
    switch (pkt[0] >> 4) {
    case 4: {
        if (len < IPV4_MIN_HEADER)
            return NFQ_PKT_TRUNCATED;
        size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
        size_t total = load16(pkt + 2);
        if (ihl < IPV4_MIN_HEADER || total < ihl)
            return NFQ_PKT_NOT_IP;
        if (len < ihl)
            return NFQ_PKT_TRUNCATED;
        if (load16(pkt + 6) & 0x3fff) /* MF flag or a fragment offset */
            return NFQ_PKT_FRAGMENT;
        l->hdr_len = ihl;
        l->ip_len = total;
        l->next_at = 9;
        l->proto = pkt[9];
        return NFQ_PKT_OK;
    }
    case 6:
        if (len < IPV6_HEADER)
            return NFQ_PKT_TRUNCATED;
        /* Payload length 0 is a jumbogram (RFC 2675): not ours to rewrite. */
        if (load16(pkt + 4) == 0)
            return NFQ_PKT_NOT_IP;
        l->hdr_len = IPV6_HEADER;
        l->ip_len = IPV6_HEADER + (size_t)load16(pkt + 4);
        l->next_at = 6;
        l->proto = pkt[6];
        return ipv6_walk(pkt, len < l->ip_len ? len : l->ip_len, l);
    default:
        return NFQ_PKT_NOT_IP;
    }
}

int nfq_d3p_offset(const uint8_t *pkt, size_t len, uint8_t d3p_proto, size_t *offset)
{
    struct ip_layout l;
    int rc = ip_header(pkt, len, &l);
    if (rc != NFQ_PKT_OK)
        return rc;
    if (l.proto != d3p_proto)
        return NFQ_PKT_NOT_D3P;
    *offset = l.hdr_len;
    return NFQ_PKT_OK;
}

void nfq_ip_source(const uint8_t *pkt, size_t len, uint8_t *addr, uint8_t *family)
{
    memset(addr, 0, 16);
    *family = 0;
    if (pkt == NULL || len < 1)
        return;
    if ((pkt[0] >> 4) == 4 && len >= IPV4_MIN_HEADER) {
        memcpy(addr, pkt + 12, 4);
        *family = 4;
    } else if ((pkt[0] >> 4) == 6 && len >= IPV6_HEADER) {
        memcpy(addr, pkt + 8, 16);
        *family = 6;
    }
}

/* Set the protocol / Next Header field at next_at and the IP length field
 * of the headers pkt[0 .. hdr_len) for a packet of total octets. */
static void ip_set_proto_and_length(uint8_t *pkt, const struct ip_layout *l, uint8_t proto,
                                    size_t total)
{
    pkt[l->next_at] = proto;
    if ((pkt[0] >> 4) == 4) {
        store16(pkt + 2, (uint16_t)total);
        ipv4_fix_checksum(pkt, l->hdr_len);
    } else {
        store16(pkt + 4, (uint16_t)(total - IPV6_HEADER));
    }
}

int nfq_strip_d3p(uint8_t *pkt, size_t len, size_t d3p_offset, size_t *new_start,
                  size_t *new_len)
{
    struct ip_layout l;
    int rc = ip_header(pkt, len, &l);
    if (rc != NFQ_PKT_OK)
        return rc;
    if (d3p_offset != l.hdr_len)
        return NFQ_PKT_NOT_D3P;
    if (l.ip_len > len)
        return NFQ_PKT_INCOMPLETE;
    /* Header Length is in 4-octet units and covers the whole D3P header. */
    if (l.ip_len - l.hdr_len < D3P_HEADER_OCTETS)
        return NFQ_PKT_TRUNCATED;
    size_t d3p_len = (size_t)pkt[l.hdr_len + 1] * 4;
    if (d3p_len < D3P_HEADER_OCTETS || d3p_len > l.ip_len - l.hdr_len)
        return NFQ_PKT_TRUNCATED;
    uint8_t next_header = pkt[l.hdr_len];
    /* The headers before D3P (IPv6 extension headers included) move up over it. */
    memmove(pkt + d3p_len, pkt, l.hdr_len);
    ip_set_proto_and_length(pkt + d3p_len, &l, next_header, l.ip_len - d3p_len);
    *new_start = d3p_len;
    *new_len = l.ip_len - d3p_len; /* link-layer padding after ip_len is dropped */
    return NFQ_PKT_OK;
}

int nfq_stamp_d3p(const uint8_t *pkt, size_t len, uint8_t d3p_proto, uint64_t now_ms,
                  uint8_t *out, size_t cap, size_t *out_len)
{
    struct ip_layout l;
    int rc = ip_header(pkt, len, &l);
    if (rc != NFQ_PKT_OK)
        return rc;
    if (l.ip_len > len)
        return NFQ_PKT_INCOMPLETE;
    size_t total = l.ip_len + D3P_HEADER_OCTETS;
    /* The IP length field must hold it, and so must the verdict's payload
     * attribute (IPv6 could say 40 + 65535, the attribute cannot carry it). */
    size_t ip_limit = (pkt[0] >> 4) == 4 ? IPV4_MAX_LENGTH : IPV6_HEADER + IPV6_MAX_PAYLOAD;
    if (total > ip_limit || total > NFQ_MAX_VERDICT_PAYLOAD)
        return NFQ_PKT_TOO_BIG;
    if (out == NULL || cap < total)
        return NFQ_PKT_NO_ROOM;
    /* D3P goes after the IP header and any IPv6 extension headers walked
     * (hop-by-hop must stay first, RFC 8200 §4.1). */
    memcpy(out, pkt, l.hdr_len);
    uint8_t *d3p = out + l.hdr_len;
    d3p[0] = l.proto;                /* Next Header: what the IP header carried */
    d3p[1] = D3P_MIN_HEADER_WORDS;   /* 12 octets = 3 words */
    d3p[2] = D3P_TIMESTAMP_POSIX_TIME_MSEC;
    d3p[3] = 0;                      /* Reserved: 0 on send */
    for (int i = 0; i < 8; i++)
        d3p[4 + i] = (uint8_t)(now_ms >> (56 - 8 * i));
    memcpy(d3p + D3P_HEADER_OCTETS, pkt + l.hdr_len, l.ip_len - l.hdr_len);
    ip_set_proto_and_length(out, &l, d3p_proto, total);
    *out_len = total;
    return NFQ_PKT_OK;
}

void nfq_enforce_packet(uint8_t *pkt, size_t len, size_t packet_len, uint8_t d3p_proto,
                        uint64_t now_ms, uint64_t window_ms, int action, int strip,
                        struct nfq_decision *out)
{
    memset(out, 0, sizeof(*out));
    /* Whatever is recorded about the packet is taken before any rewrite. */
    nfq_ip_source(pkt, len, out->src, &out->family);
    struct ip_layout l;
    uint64_t peer_time = 0;
    int cause = D3P_MALFORMED;
    if (ip_header(pkt, len, &l) == NFQ_PKT_OK && l.proto == d3p_proto) {
        /* The D3P header must lie inside the packet the IP header declares:
         * octets past it are link-layer padding, not D3P. */
        size_t checked = l.ip_len < len ? l.ip_len : len;
        cause = d3p_check_packet_inline(pkt, checked, l.hdr_len, now_ms, window_ms, &peer_time);
    }
    out->cause = cause;
    out->peer_time_ms = cause == D3P_MALFORMED ? 0 : peer_time;
    int pass = cause == D3P_FRESH || action == NFQ_ACTION_COUNT;
    out->verdict = pass ? NFQ_VERDICT_ACCEPT : NFQ_VERDICT_DROP;
    if (!pass || !strip || cause == D3P_MALFORMED)
        return;
    if (packet_len > len) {
        /* Only the copy range reached us: a rewritten verdict would cut the
         * packet short (the kernel replaces the whole packet). */
        out->strip_error = 1;
        if (action == NFQ_ACTION_DROP)
            out->verdict = NFQ_VERDICT_DROP;
        return;
    }
    size_t start, new_len;
    if (nfq_strip_d3p(pkt, len, l.hdr_len, &start, &new_len) == NFQ_PKT_OK) {
        out->modified = 1;
        out->start = start;
        out->len = new_len;
    } else {
        out->strip_error = 1;
        if (action == NFQ_ACTION_DROP)
            out->verdict = NFQ_VERDICT_DROP;
    }
}
