/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_msg.h - sans-io nfnetlink_queue message builders and parsers.
 *
 * Pure functions over caller buffers: no socket, no globals, no allocation.
 * The wire format is the kernel's uapi <linux/netfilter/nfnetlink_queue.h>
 * (netlink header, struct nfgenmsg, then netlink attributes, all aligned to
 * 4 octets).  Builders return the number of octets written, or 0 when the
 * buffer is too small, so a caller can append several messages to one send
 * buffer (the kernel processes every message of a datagram in order).
 *
 * The declarations between the cffi markers are what Python sees
 * (d3p_fast/_build.py); tests/test_nfq_msg.py checks each builder against
 * hand-assembled bytes.
 */
#ifndef D3P_FAST_NFQ_MSG_H
#define D3P_FAST_NFQ_MSG_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */

/* Netfilter verdicts (<linux/netfilter.h> NF_DROP / NF_ACCEPT / NF_REPEAT). */
enum nfq_verdict_code {
    NFQ_VERDICT_DROP = 0,
    NFQ_VERDICT_ACCEPT = 1,
    NFQ_VERDICT_REPEAT = 4
};

/* What nfq_parse_packet() found in one NFQNL_MSG_PACKET message. */
struct nfq_packet {
    uint32_t packet_id;       /* NFQA_PACKET_HDR, host order */
    uint16_t hw_protocol;     /* host order (ETH_P_IP, ETH_P_IPV6, ...) */
    uint8_t hook;             /* NF_INET_* hook the packet was queued from */
    uint8_t has_timestamp;    /* NFQA_TIMESTAMP present (only if the skb had one) */
    uint64_t timestamp_ms;    /* NFQA_TIMESTAMP as POSIX ms, when has_timestamp */
    const uint8_t *payload;   /* NFQA_PAYLOAD (points into the message), or NULL */
    uint32_t payload_len;     /* octets copied to us (at most the copy range) */
    uint32_t packet_len;      /* whole packet: NFQA_CAP_LEN if truncated, else payload_len */
    uint32_t skb_info;        /* NFQA_SKB_INFO bits (GSO, CSUMNOTREADY, ...) */
    uint32_t mark;            /* NFQA_MARK, 0 when absent */
    uint16_t queue_num;       /* nfgenmsg res_id */
    uint8_t has_packet_id;    /* packet_id is valid (set even when parsing fails later) */
};

/* Result codes of the parsers (negative = cannot use the message). */
enum nfq_parse_result {
    NFQ_PARSE_OK = 0,
    NFQ_PARSE_TRUNCATED = -1,     /* header or attribute runs past the buffer */
    NFQ_PARSE_NOT_PACKET = -2,    /* well formed, but not NFQNL_MSG_PACKET */
    NFQ_PARSE_BAD_ATTR = -3,      /* known attribute with the wrong size */
    NFQ_PARSE_NO_PACKET_HDR = -4  /* no NFQA_PACKET_HDR: no id to give a verdict for */
};

/* NFQNL_MSG_CONFIG carrying NFQA_CFG_CMD only (bind, unbind). */
size_t nfq_build_cfg_cmd(uint8_t *buf, size_t cap, uint32_t seq, uint16_t queue,
                         uint8_t command, int want_ack);

/* One NFQNL_MSG_CONFIG that binds a queue and configures it completely:
 * CMD BIND, PARAMS (copy mode + range), QUEUE_MAXLEN (skipped when 0),
 * FLAGS and MASK.  One message means one acknowledgement and no window in
 * which packets are queued with the kernel's defaults. */
size_t nfq_build_cfg_bind(uint8_t *buf, size_t cap, uint32_t seq, uint16_t queue,
                          uint8_t copy_mode, uint32_t copy_range, uint32_t queue_maxlen,
                          uint32_t flags, uint32_t mask);

/* NFQNL_MSG_VERDICT for one packet; payload (may be NULL) replaces the packet. */
size_t nfq_build_verdict(uint8_t *buf, size_t cap, uint16_t queue, uint32_t verdict,
                         uint32_t packet_id, const uint8_t *payload, size_t payload_len);

/* NFQNL_MSG_VERDICT_BATCH: the verdict for every queued packet with id <= packet_id. */
size_t nfq_build_verdict_batch(uint8_t *buf, size_t cap, uint16_t queue, uint32_t verdict,
                               uint32_t packet_id);

/* Length of the netlink message at buf[offset] (0 when none fits); the next
 * message starts at offset + the aligned length. */
size_t nfq_next_message(const uint8_t *buf, size_t len, size_t offset, size_t *msg_len);

/* Netlink message type of a message (0 if too short). */
uint16_t nfq_message_type(const uint8_t *msg, size_t len);

/* NLMSG_ERROR: 0 for an acknowledgement, -errno for an error; *seq gets the
 * sequence number of the request.  Returns NFQ_PARSE_* (< 0) if not NLMSG_ERROR. */
int nfq_parse_error(const uint8_t *msg, size_t len, int *error, uint32_t *seq);

/* Parse one NFQNL_MSG_PACKET.  Unknown attributes are skipped (newer kernels
 * add some); known fixed-size ones must have their exact size. */
int nfq_parse_packet(const uint8_t *msg, size_t len, struct nfq_packet *out);

/* cffi:end */

#endif
