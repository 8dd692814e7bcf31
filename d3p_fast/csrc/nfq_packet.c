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
#define IP_MAX_LENGTH 0xffff

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

/* Validates the IP header; *hdr_len = its length, *ip_len = the packet
 * length the header declares, *proto = protocol / next header. */
static int ip_header(const uint8_t *pkt, size_t len, size_t *hdr_len, size_t *ip_len,
                     uint8_t *proto)
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
        *hdr_len = ihl;
        *ip_len = total;
        *proto = pkt[9];
        return NFQ_PKT_OK;
    }
    case 6:
        if (len < IPV6_HEADER)
            return NFQ_PKT_TRUNCATED;
        *hdr_len = IPV6_HEADER;
        /* Payload length 0 is a jumbogram (RFC 2675): not ours to rewrite. */
        if (load16(pkt + 4) == 0)
            return NFQ_PKT_NOT_IP;
        *ip_len = IPV6_HEADER + (size_t)load16(pkt + 4);
        *proto = pkt[6];
        return NFQ_PKT_OK;
    default:
        return NFQ_PKT_NOT_IP;
    }
}

int nfq_d3p_offset(const uint8_t *pkt, size_t len, uint8_t d3p_proto, size_t *offset)
{
    size_t hdr_len, ip_len;
    uint8_t proto;
    int rc = ip_header(pkt, len, &hdr_len, &ip_len, &proto);
    if (rc != NFQ_PKT_OK)
        return rc;
    if (proto != d3p_proto)
        return NFQ_PKT_NOT_D3P;
    *offset = hdr_len;
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

/* Set protocol / next header and the length field of an IP header of hdr_len octets. */
static void ip_set_proto_and_length(uint8_t *hdr, size_t hdr_len, uint8_t proto, size_t total)
{
    if ((hdr[0] >> 4) == 4) {
        hdr[9] = proto;
        store16(hdr + 2, (uint16_t)total);
        ipv4_fix_checksum(hdr, hdr_len);
    } else {
        hdr[6] = proto;
        store16(hdr + 4, (uint16_t)(total - IPV6_HEADER));
    }
}

int nfq_strip_d3p(uint8_t *pkt, size_t len, size_t d3p_offset, size_t *new_start,
                  size_t *new_len)
{
    size_t hdr_len, ip_len;
    uint8_t proto;
    int rc = ip_header(pkt, len, &hdr_len, &ip_len, &proto);
    if (rc != NFQ_PKT_OK)
        return rc;
    if (d3p_offset != hdr_len)
        return NFQ_PKT_NOT_D3P;
    if (ip_len > len)
        return NFQ_PKT_INCOMPLETE;
    /* Header Length is in 4-octet units and covers the whole D3P header. */
    if (ip_len - hdr_len < D3P_HEADER_OCTETS)
        return NFQ_PKT_TRUNCATED;
    size_t d3p_len = (size_t)pkt[hdr_len + 1] * 4;
    if (d3p_len < D3P_HEADER_OCTETS || d3p_len > ip_len - hdr_len)
        return NFQ_PKT_TRUNCATED;
    uint8_t next_header = pkt[hdr_len];
    memmove(pkt + d3p_len, pkt, hdr_len);
    ip_set_proto_and_length(pkt + d3p_len, hdr_len, next_header, ip_len - d3p_len);
    *new_start = d3p_len;
    *new_len = ip_len - d3p_len; /* link-layer padding after ip_len is dropped */
    return NFQ_PKT_OK;
}

int nfq_stamp_d3p(const uint8_t *pkt, size_t len, uint8_t d3p_proto, uint64_t now_ms,
                  uint8_t *out, size_t cap, size_t *out_len)
{
    size_t hdr_len, ip_len;
    uint8_t proto;
    int rc = ip_header(pkt, len, &hdr_len, &ip_len, &proto);
    if (rc != NFQ_PKT_OK)
        return rc;
    if (ip_len > len)
        return NFQ_PKT_INCOMPLETE;
    size_t total = ip_len + D3P_HEADER_OCTETS;
    if (total > IP_MAX_LENGTH)
        return NFQ_PKT_TOO_BIG;
    if (out == NULL || cap < total)
        return NFQ_PKT_NO_ROOM;
    memcpy(out, pkt, hdr_len);
    uint8_t *d3p = out + hdr_len;
    d3p[0] = proto;                  /* Next Header: what the IP header carried */
    d3p[1] = D3P_MIN_HEADER_WORDS;   /* 12 octets = 3 words */
    d3p[2] = D3P_TIMESTAMP_POSIX_TIME_MSEC;
    d3p[3] = 0;                      /* Reserved: 0 on send */
    for (int i = 0; i < 8; i++)
        d3p[4 + i] = (uint8_t)(now_ms >> (56 - 8 * i));
    memcpy(d3p + D3P_HEADER_OCTETS, pkt + hdr_len, ip_len - hdr_len);
    ip_set_proto_and_length(out, hdr_len, d3p_proto, total);
    *out_len = total;
    return NFQ_PKT_OK;
}

void nfq_enforce_packet(uint8_t *pkt, size_t len, size_t packet_len, uint8_t d3p_proto,
                        uint64_t now_ms, uint64_t window_ms, int action, int strip,
                        struct nfq_decision *out)
{
    memset(out, 0, sizeof(*out));
    size_t offset = 0;
    uint64_t peer_time = 0;
    int cause = D3P_MALFORMED;
    if (nfq_d3p_offset(pkt, len, d3p_proto, &offset) == NFQ_PKT_OK)
        cause = d3p_check_packet_inline(pkt, len, offset, now_ms, window_ms, &peer_time);
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
    if (nfq_strip_d3p(pkt, len, offset, &start, &new_len) == NFQ_PKT_OK) {
        out->modified = 1;
        out->start = start;
        out->len = new_len;
    } else {
        out->strip_error = 1;
        if (action == NFQ_ACTION_DROP)
            out->verdict = NFQ_VERDICT_DROP;
    }
}
