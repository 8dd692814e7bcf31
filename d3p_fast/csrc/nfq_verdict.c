/* SPDX-License-Identifier: GPL-2.0-only */
/* nfq_verdict.c - the verdict batcher (see nfq_verdict.h for the rules). */
#include "nfq_verdict.h"

#include "nfq_msg.h"

/* Size of a verdict message without payload: nlmsghdr 16 + nfgenmsg 4 +
 * NFQA_VERDICT_HDR attribute 4 + 8.  Space for one is always kept free so an
 * open batch can be closed whatever else was appended. */
#define NFQ_PLAIN_VERDICT_LEN 32
/* A verdict that changes the open batch's verdict needs room to close that
 * batch and later the new one: a buffer smaller than two plain messages
 * would answer FULL forever, so it is refused outright. */
#define NFQ_TX_MIN_CAP (2 * NFQ_PLAIN_VERDICT_LEN)

void nfq_tx_init(struct nfq_tx *tx, uint8_t *buf, size_t cap, uint16_t queue)
{
    tx->buf = buf;
    tx->cap = cap;
    tx->len = 0;
    tx->queue = queue;
    tx->pending = 0;
    tx->pending_verdict = 0;
    tx->pending_id = 0;
    tx->pending_count = 0;
    tx->packets = 0;
    tx->messages = 0;
    tx->no_batch = 0;
}

int nfq_tx_close_batch(struct nfq_tx *tx)
{
    if (!tx->pending)
        return NFQ_TX_OK;
    size_t n;
    if (tx->pending_count == 1)
        /* One packet: the plain message says the same in the same size. */
        n = nfq_build_verdict(tx->buf + tx->len, tx->cap - tx->len, tx->queue,
                              tx->pending_verdict, tx->pending_id, NULL, 0);
    else
        n = nfq_build_verdict_batch(tx->buf + tx->len, tx->cap - tx->len, tx->queue,
                                    tx->pending_verdict, tx->pending_id);
    if (n == 0)
        return NFQ_TX_FULL; /* cannot happen while the reserve is kept */
    tx->len += n;
    tx->messages++;
    tx->pending = 0;
    tx->pending_count = 0;
    return NFQ_TX_OK;
}

int nfq_tx_verdict(struct nfq_tx *tx, uint32_t packet_id, uint32_t verdict)
{
    if (tx->cap < NFQ_TX_MIN_CAP)
        return NFQ_TX_TOO_BIG;
    if (tx->pending && tx->pending_verdict == verdict && !tx->no_batch) {
        tx->pending_id = packet_id;
        tx->pending_count++;
        tx->packets++;
        return NFQ_TX_OK;
    }
    /* Closing the open batch and later closing the new one need two plain
     * message sizes. */
    if (tx->pending && tx->cap - tx->len < 2 * NFQ_PLAIN_VERDICT_LEN)
        return NFQ_TX_FULL;
    if (!tx->pending && tx->cap - tx->len < NFQ_PLAIN_VERDICT_LEN)
        return NFQ_TX_FULL;
    int rc = nfq_tx_close_batch(tx);
    if (rc != NFQ_TX_OK)
        return rc;
    tx->pending = 1;
    tx->pending_verdict = verdict;
    tx->pending_id = packet_id;
    tx->pending_count = 1;
    tx->packets++;
    /* Per-id mode: the one-packet "batch" is written at once as a plain
     * NFQNL_MSG_VERDICT (its room was checked above). */
    if (tx->no_batch)
        return nfq_tx_close_batch(tx);
    return NFQ_TX_OK;
}

int nfq_tx_verdict_payload(struct nfq_tx *tx, uint32_t packet_id, uint32_t verdict,
                           const uint8_t *payload, size_t payload_len)
{
    /* headers 20 + verdict attribute 12 + payload attribute 4 + padded payload */
    size_t need = NFQ_PLAIN_VERDICT_LEN + 4 + ((payload_len + 3) & ~(size_t)3);
    size_t reserve = tx->pending ? NFQ_PLAIN_VERDICT_LEN : 0;
    if (tx->cap < NFQ_TX_MIN_CAP || need > tx->cap ||
        payload_len + 4 > 0xffff) /* nla_len is 16 bits */
        return NFQ_TX_TOO_BIG;
    if (tx->cap - tx->len < need + reserve) {
        /* Write the open batch now (its room is always kept), so that after
         * the caller's send the retry finds an empty buffer. */
        if (tx->pending)
            nfq_tx_close_batch(tx);
        return NFQ_TX_FULL;
    }
    int rc = nfq_tx_close_batch(tx);
    if (rc != NFQ_TX_OK)
        return rc;
    size_t n = nfq_build_verdict(tx->buf + tx->len, tx->cap - tx->len, tx->queue, verdict,
                                 packet_id, payload, payload_len);
    if (n == 0)
        return NFQ_TX_FULL;
    tx->len += n;
    tx->messages++;
    tx->packets++;
    return NFQ_TX_OK;
}

void nfq_tx_sent(struct nfq_tx *tx)
{
    tx->len = 0;
}
