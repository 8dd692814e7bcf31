/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_asan_harness.c - the NFQUEUE enforcer's sans-io C code under
 * AddressSanitizer + UBSan (driven by tests/test_nfq_asan.py).
 *
 *   canary              reads one octet past a malloc'd buffer (must be caught)
 *   fuzz SEED ITERS     random and mutated IPv4/IPv6 (+ extension headers)
 *                       packets through offset / source / strip / stamp /
 *                       enforce, random netlink messages through the parsers,
 *                       random verdict sequences through the batcher
 *
 * Every buffer handed to the code under test is malloc'd at exactly its
 * length, so any read past the end is an ASan report.  Besides memory
 * safety the fuzzer checks what must hold of every answer (exit 1 and a
 * line on stdout otherwise): rewritten packets lie inside the buffer and
 * carry consistent lengths and a valid IPv4 checksum, stamp then strip gives
 * back the packet, parsed payloads lie inside the message, and the batcher
 * never writes past its buffer nor answers FULL to an empty one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d3p_window.h"
#include "nfq_msg.h"
#include "nfq_packet.h"
#include "nfq_verdict.h"

#define D3P_PROTO 253
#define FAIL(...)                                                                            \
    do {                                                                                     \
        printf("iteration %ld: ", iteration);                                                \
        printf(__VA_ARGS__);                                                                 \
        printf("\n");                                                                        \
        exit(1);                                                                             \
    } while (0)

static uint64_t state;
static long iteration;
/* How often each path succeeded: a fuzzer that never reaches them proves nothing. */
static long stripped, stamped, judged, parsed, batched;

static uint64_t rnd(void)
{
    /* xorshift64: reproducible from the seed on the command line */
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

/* Not inlined: the sanitizers must see an unknown-size heap buffer, so an
 * overread is ASan's report (the canary relies on it). */
static __attribute__((noinline)) uint8_t *copy_exact(const uint8_t *src, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    if (len)
        memcpy(p, src, len);
    return p;
}

static uint16_t ones_sum(const uint8_t *h, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)((h[i] << 8) | h[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* A D3P-over-IP packet (sometimes valid), written to p; returns its length. */
static size_t build_packet(uint8_t *p, size_t cap)
{
    size_t payload = rnd() % 160, n, at;
    for (size_t i = 0; i < cap && i < 1200; i++)
        p[i] = (uint8_t)rnd();
    if (rnd() & 1) {
        size_t ihl = 5 + rnd() % 11;
        n = ihl * 4 + payload;
        p[0] = (uint8_t)(0x40 | ihl);
        p[2] = (uint8_t)(n >> 8);
        p[3] = (uint8_t)n;
        p[6] = p[7] = 0;
        p[9] = D3P_PROTO;
        at = ihl * 4;
        p[10] = p[11] = 0;
        uint16_t sum = ones_sum(p, ihl * 4);
        p[10] = (uint8_t)(~sum >> 8);
        p[11] = (uint8_t)~sum;
    } else {
        static const uint8_t ext_types[] = {0, 43, 60, 44, 60};
        size_t exts = rnd() % 4;
        uint8_t *next = &p[6];
        at = 40;
        for (size_t e = 0; e < exts; e++) {
            size_t words = rnd() % 3;
            *next = ext_types[rnd() % sizeof(ext_types)];
            p[at + 1] = (uint8_t)words;
            next = &p[at];
            at += (words + 1) * 8;
        }
        *next = D3P_PROTO;
        n = at + payload;
        p[0] = 0x60;
        p[4] = (uint8_t)((n - 40) >> 8);
        p[5] = (uint8_t)(n - 40);
    }
    if (payload >= 12) {
        p[at + 1] = (uint8_t)(rnd() % 4 ? 3 : rnd() % 8);
        p[at + 2] = 1; /* POSIX-TIME-MSEC */
    }
    for (int k = (int)(rnd() % 4); k > 0 && rnd() % 2; k--)
        p[rnd() % n] = (uint8_t)rnd(); /* mutations */
    if (rnd() % 5 == 0)
        n = rnd() % (n + 1); /* cut short */
    else if (rnd() % 5 == 0)
        n += rnd() % 8;      /* trailing padding */
    return n;
}

static size_t ip_length_field(const uint8_t *p)
{
    return (p[0] >> 4) == 4 ? (size_t)((p[2] << 8) | p[3]) : 40 + (size_t)((p[4] << 8) | p[5]);
}

static void check_rewritten(const uint8_t *p, size_t len, const char *what)
{
    if (len < 20)
        FAIL("%s: %zu octets", what, len);
    if (ip_length_field(p) != len)
        FAIL("%s: IP length %zu, packet %zu", what, ip_length_field(p), len);
    if ((p[0] >> 4) == 4 && ones_sum(p, (size_t)(p[0] & 15) * 4) != 0xffff)
        FAIL("%s: IPv4 header checksum wrong", what);
}

static void fuzz_packet(void)
{
    static uint8_t raw[1400];
    size_t len = build_packet(raw, sizeof(raw));
    uint8_t *p = copy_exact(raw, len);
    size_t offset = 0, start, new_len;
    uint8_t addr[16], family;
    nfq_ip_source(p, len, addr, &family);
    int located = nfq_d3p_offset(p, len, D3P_PROTO, &offset);
    if (located == NFQ_PKT_OK && offset > len)
        FAIL("offset %zu past %zu", offset, len);
    if (nfq_strip_d3p(p, len, located == NFQ_PKT_OK ? offset : rnd() % (len + 2), &start,
                      &new_len) == NFQ_PKT_OK) {
        if (start + new_len > len)
            FAIL("strip result %zu+%zu past %zu", start, new_len, len);
        check_rewritten(p + start, new_len, "strip");
        stripped++;
    }
    free(p);

    /* stamp into an exact-size buffer, then strip must give the packet back */
    p = copy_exact(raw, len);
    size_t out_len = 0, cap = len + 12;
    uint8_t *out = malloc(cap ? cap : 1);
    if (nfq_stamp_d3p(p, len, D3P_PROTO, rnd(), out, cap, &out_len) == NFQ_PKT_OK) {
        check_rewritten(out, out_len, "stamp");
        stamped++;
        size_t ip_len = ip_length_field(p);
        uint8_t *again = copy_exact(out, out_len);
        if (nfq_d3p_offset(again, out_len, D3P_PROTO, &offset) != NFQ_PKT_OK ||
            nfq_strip_d3p(again, out_len, offset, &start, &new_len) != NFQ_PKT_OK)
            FAIL("a stamped packet cannot be stripped");
        /* Both rewrites recompute the IPv4 checksum: compare without it. */
        if ((p[0] >> 4) == 4 && new_len >= 12)
            memcpy(again + start + 10, p + 10, 2);
        if (new_len != ip_len || memcmp(again + start, p, ip_len) != 0)
            FAIL("strip(stamp(p)) != p");
        free(again);
    }
    free(out);
    free(p);

    p = copy_exact(raw, len);
    struct nfq_decision d;
    nfq_enforce_packet(p, len, len + (rnd() % 3 == 0), D3P_PROTO,
                       rnd() % 3 ? 1000 : rnd(), rnd() % 2000, (int)(rnd() & 1),
                       (int)(rnd() & 1), &d);
    judged += d.cause != D3P_MALFORMED;
    if (d.modified && d.start + d.len > len)
        FAIL("decision %zu+%zu past %zu", d.start, d.len, len);
    if (d.family != family || memcmp(d.src, addr, 16) != 0)
        FAIL("decision source differs from nfq_ip_source");
    free(p);
}

static void fuzz_netlink(void)
{
    size_t len = rnd() % 300;
    uint8_t *msg = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        msg[i] = (uint8_t)rnd();
    if (len >= 20 && rnd() % 4) {
        /* a plausible NFQNL_MSG_PACKET: mostly right-sized attributes (type,
         * value size), now and then a wrong size or a length that lies */
        static const uint16_t types[] = {1, 3, 4, 10, 13, 14, 2, 99};
        static const uint16_t sizes[] = {7, 4, 16, 0, 4, 4, 8, 5};
        uint32_t nl = rnd() % 8 ? (uint32_t)len : (uint32_t)(rnd() % (len + 8));
        memcpy(msg, &nl, 4);
        msg[4] = 0;  /* NFQNL_MSG_PACKET */
        msg[5] = 3;  /* NFNL_SUBSYS_QUEUE */
        for (size_t at = 20, k = 0; at + 4 <= len; k++) {
            size_t pick = k == 0 && rnd() % 4 ? 0 : rnd() % 8;
            size_t value = types[pick] == 10 ? rnd() % 64 : sizes[pick];
            if (rnd() % 16 == 0)
                value = rnd() % 40;
            if (at + 4 + value > len)
                value = len - at - 4; /* the last one fills the message */
            uint16_t alen = (uint16_t)(rnd() % 32 ? 4 + value : rnd());
            memcpy(msg + at, &alen, 2);
            memcpy(msg + at + 2, &types[pick], 2);
            at += ((size_t)alen + 3) & ~(size_t)3;
            if (alen == 0)
                break;
        }
    }
    struct nfq_packet pk;
    int parse = nfq_parse_packet(msg, len, &pk);
    parsed += parse == NFQ_PARSE_OK;
    if (parse == NFQ_PARSE_OK && pk.payload &&
        (pk.payload < msg || pk.payload + pk.payload_len > msg + len))
        FAIL("parsed payload outside the message");
    int error;
    uint32_t seq;
    nfq_parse_error(msg, len, &error, &seq);
    size_t msg_len, at = 0;
    while (at < len) {
        size_t next = nfq_next_message(msg, len, at, &msg_len);
        if (msg_len == 0)
            break;
        if (at + msg_len > len || next <= at)
            FAIL("message walk out of bounds or stuck");
        nfq_message_type(msg + at, msg_len);
        at = next;
    }
    free(msg);
}

static void fuzz_batcher(void)
{
    size_t cap = rnd() % 400;
    uint8_t *buf = malloc(cap ? cap : 1);
    struct nfq_tx tx;
    nfq_tx_init(&tx, buf, cap, 7);
    tx.no_batch = rnd() % 4 == 0;
    static uint8_t payload[512];
    for (uint32_t id = 1; id < 200; id++) {
        uint32_t verdict = rnd() % 3 ? 1 : 0;
        size_t plen = rnd() % 5 == 0 ? rnd() % sizeof(payload) : 0;
        int rc = 0;
        for (int attempt = 0; attempt < 2; attempt++) {
            rc = plen ? nfq_tx_verdict_payload(&tx, id, verdict, payload, plen)
                      : nfq_tx_verdict(&tx, id, verdict);
            if (tx.len > cap)
                FAIL("batcher wrote %zu of %zu", tx.len, cap);
            batched += rc == NFQ_TX_OK;
            if (rc != NFQ_TX_FULL)
                break;
            if (attempt == 1)
                FAIL("FULL after the buffer was sent (cap %zu)", cap);
            nfq_tx_sent(&tx);
        }
    }
    if (nfq_tx_close_batch(&tx) == NFQ_TX_FULL) {
        nfq_tx_sent(&tx);
        if (nfq_tx_close_batch(&tx) != NFQ_TX_OK)
            FAIL("cannot close a batch in an empty buffer");
    }
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "canary") == 0) {
        static const uint8_t eight[8];
        volatile uint8_t *p = copy_exact(eight, sizeof(eight));
        int v = p[8]; /* deliberately one past the end */
        free((void *)p);
        return v == 12345;
    }
    if (argc != 4 || strcmp(argv[1], "fuzz") != 0) {
        fprintf(stderr, "usage: %s canary | fuzz SEED ITERATIONS\n", argv[0]);
        return 2;
    }
    state = strtoull(argv[2], NULL, 0) | 1;
    long iterations = atol(argv[3]);
    for (iteration = 0; iteration < iterations; iteration++) {
        fuzz_packet();
        fuzz_netlink();
        if (iteration % 16 == 0)
            fuzz_batcher();
    }
    printf("ok %ld stripped %ld stamped %ld judged %ld parsed %ld batched %ld\n", iterations,
           stripped, stamped, judged, parsed, batched);
    return 0;
}
