/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_verdict.h - the verdict batcher: packs verdicts into one send buffer.
 *
 * Rules (Suricata's verdict cache, source-nfq.c, adapted):
 *   - consecutive packets with the same verdict and no new payload collapse
 *     into one NFQNL_MSG_VERDICT_BATCH ("every queued id <= N");
 *   - a different verdict (so a drop after accepts), or a modified packet,
 *     closes the pending batch first; a modified packet gets its own
 *     NFQNL_MSG_VERDICT with the new payload;
 *   - the caller closes the batch and sends the buffer when the socket goes
 *     idle, so no accepted packet waits for more traffic.
 * A drop therefore ends a run of accepts at once, but the messages leave in
 * the round's one send, not one send per drop: under a flood of stale
 * packets (the attack D3P is for) consecutive drops batch like accepts.
 * Several messages go out in one send: the kernel handles every netlink
 * message of a datagram in order (netlink_rcv_skb).  Because the kernel
 * hands packets to us in id order, a batch verdict never reaches a packet we
 * have not seen: each earlier id either sits in the batch or already got its
 * own verdict earlier in the same buffer -- provided the caller never
 * discards a buffer it failed to send, and answers every id the kernel
 * queued.  When the caller lost track of an id (a packet message it could
 * not parse), it sets no_batch (or answers the missing ids first): a batch
 * verdict would otherwise accept the unanswered packet with the run.
 *
 * Pure: the caller owns the buffer and does the I/O.
 */
#ifndef D3P_FAST_NFQ_VERDICT_H
#define D3P_FAST_NFQ_VERDICT_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */

struct nfq_tx {
    uint8_t *buf;
    size_t cap;
    size_t len;                 /* octets of complete messages in buf */
    uint16_t queue;
    uint8_t pending;            /* a batch is open */
    uint32_t pending_verdict;
    uint32_t pending_id;        /* highest id in the open batch */
    uint32_t pending_count;     /* packets in the open batch */
    uint64_t packets;           /* packets given a verdict through this tx */
    uint64_t messages;          /* verdict messages written */
    uint8_t no_batch;           /* 1: every verdict is its own NFQNL_MSG_VERDICT */
};

enum nfq_tx_result {
    NFQ_TX_OK = 0,
    NFQ_TX_FULL = -1,           /* send buf[0..len) and reset len, then retry */
    NFQ_TX_TOO_BIG = -2         /* the message can never fit this buffer (or the
                                   buffer is under 64 octets: too small to batch) */
};

void nfq_tx_init(struct nfq_tx *tx, uint8_t *buf, size_t cap, uint16_t queue);

/* Verdict for one packet without new payload (joins or opens a batch). */
int nfq_tx_verdict(struct nfq_tx *tx, uint32_t packet_id, uint32_t verdict);

/* Verdict carrying a replacement packet (closes the open batch first). */
int nfq_tx_verdict_payload(struct nfq_tx *tx, uint32_t packet_id, uint32_t verdict,
                           const uint8_t *payload, size_t payload_len);

/* Write the open batch, if any, as a message (before sending the buffer). */
int nfq_tx_close_batch(struct nfq_tx *tx);

/* After the caller sent buf[0..len): start over with an empty buffer. */
void nfq_tx_sent(struct nfq_tx *tx);

/* cffi:end */

#endif
