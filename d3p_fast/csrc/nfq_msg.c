/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_msg.c - sans-io nfnetlink_queue messages (see nfq_msg.h).
 *
 * Layout of every message (netlink(7), nfnetlink.h):
 *   struct nlmsghdr  16 octets: len, type = NFNL_SUBSYS_QUEUE << 8 | op, flags, seq, pid
 *   struct nfgenmsg   4 octets: family, version NFNETLINK_V0, res_id = queue (big endian)
 *   attributes        struct nlattr {len, type} + value, each padded to 4 octets
 * Attribute values are big endian ("network byte order") as the uapi header
 * says (__be32), except the ones the kernel keeps in host order, which we
 * never send.
 */
#include "nfq_msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>

#define NFQ_HEADERS_LEN (NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)))

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Write nlmsghdr + nfgenmsg; returns the header length or 0 if it does not fit. */
static size_t put_headers(uint8_t *buf, size_t cap, uint8_t op, uint16_t flags, uint32_t seq,
                          uint16_t queue)
{
    if (cap < NFQ_HEADERS_LEN)
        return 0;
    memset(buf, 0, NFQ_HEADERS_LEN);
    struct nlmsghdr nlh = {
        .nlmsg_len = NFQ_HEADERS_LEN,
        .nlmsg_type = (uint16_t)((NFNL_SUBSYS_QUEUE << 8) | op),
        .nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags),
        .nlmsg_seq = seq,
        .nlmsg_pid = 0, /* to the kernel */
    };
    struct nfgenmsg nfg = {
        /* AF_UNSPEC: since Linux 3.8 the queue is not tied to a family. */
        .nfgen_family = AF_UNSPEC,
        .version = NFNETLINK_V0,
        .res_id = htons(queue),
    };
    memcpy(buf, &nlh, sizeof(nlh));
    memcpy(buf + NLMSG_HDRLEN, &nfg, sizeof(nfg));
    return NFQ_HEADERS_LEN;
}

/* Append one attribute at buf[*used]; updates *used (aligned) or returns 0. */
static int put_attr(uint8_t *buf, size_t cap, size_t *used, uint16_t type, const void *value,
                    size_t value_len)
{
    size_t attr_len = NLA_HDRLEN + value_len;
    size_t padded = NLA_ALIGN(attr_len);
    if (attr_len > 0xffff || *used > cap || cap - *used < padded)
        return 0;
    struct nlattr nla = {.nla_len = (uint16_t)attr_len, .nla_type = type};
    memcpy(buf + *used, &nla, sizeof(nla));
    if (value_len)
        memcpy(buf + *used + NLA_HDRLEN, value, value_len);
    memset(buf + *used + attr_len, 0, padded - attr_len);
    *used += padded;
    return 1;
}

static size_t finish(uint8_t *buf, size_t used)
{
    uint32_t len = (uint32_t)used;
    memcpy(buf, &len, sizeof(len)); /* nlmsg_len, host order */
    return used;
}

static int put_be32_attr(uint8_t *buf, size_t cap, size_t *used, uint16_t type, uint32_t value)
{
    uint8_t be[4];
    store_be32(be, value);
    return put_attr(buf, cap, used, type, be, sizeof(be));
}

static int put_cmd_attr(uint8_t *buf, size_t cap, size_t *used, uint8_t command)
{
    struct nfqnl_msg_config_cmd cmd = {.command = command, ._pad = 0, .pf = htons(AF_UNSPEC)};
    return put_attr(buf, cap, used, NFQA_CFG_CMD, &cmd, sizeof(cmd));
}

size_t nfq_build_cfg_cmd(uint8_t *buf, size_t cap, uint32_t seq, uint16_t queue,
                         uint8_t command, int want_ack)
{
    size_t used = put_headers(buf, cap, NFQNL_MSG_CONFIG, want_ack ? NLM_F_ACK : 0, seq, queue);
    if (!used || !put_cmd_attr(buf, cap, &used, command))
        return 0;
    return finish(buf, used);
}

size_t nfq_build_cfg_bind(uint8_t *buf, size_t cap, uint32_t seq, uint16_t queue,
                          uint8_t copy_mode, uint32_t copy_range, uint32_t queue_maxlen,
                          uint32_t flags, uint32_t mask)
{
    size_t used = put_headers(buf, cap, NFQNL_MSG_CONFIG, NLM_F_ACK, seq, queue);
    if (!used || !put_cmd_attr(buf, cap, &used, NFQNL_CFG_CMD_BIND))
        return 0;
    /* struct nfqnl_msg_config_params is packed: 5 octets, padded to 8. */
    struct nfqnl_msg_config_params params = {.copy_range = htonl(copy_range),
                                             .copy_mode = copy_mode};
    if (!put_attr(buf, cap, &used, NFQA_CFG_PARAMS, &params, sizeof(params)))
        return 0;
    if (queue_maxlen && !put_be32_attr(buf, cap, &used, NFQA_CFG_QUEUE_MAXLEN, queue_maxlen))
        return 0;
    /* The kernel changes only the FLAGS bits selected by MASK, and rejects
     * FLAGS without MASK (nfqnl_recv_config), so both always go together. */
    if (!put_be32_attr(buf, cap, &used, NFQA_CFG_FLAGS, flags) ||
        !put_be32_attr(buf, cap, &used, NFQA_CFG_MASK, mask))
        return 0;
    return finish(buf, used);
}

size_t nfq_build_verdict(uint8_t *buf, size_t cap, uint16_t queue, uint32_t verdict,
                         uint32_t packet_id, const uint8_t *payload, size_t payload_len)
{
    size_t used = put_headers(buf, cap, NFQNL_MSG_VERDICT, 0, 0, queue);
    struct nfqnl_msg_verdict_hdr vh = {.verdict = htonl(verdict), .id = htonl(packet_id)};
    if (!used || !put_attr(buf, cap, &used, NFQA_VERDICT_HDR, &vh, sizeof(vh)))
        return 0;
    if (payload && !put_attr(buf, cap, &used, NFQA_PAYLOAD, payload, payload_len))
        return 0;
    return finish(buf, used);
}

size_t nfq_build_verdict_batch(uint8_t *buf, size_t cap, uint16_t queue, uint32_t verdict,
                               uint32_t packet_id)
{
    size_t used = put_headers(buf, cap, NFQNL_MSG_VERDICT_BATCH, 0, 0, queue);
    struct nfqnl_msg_verdict_hdr vh = {.verdict = htonl(verdict), .id = htonl(packet_id)};
    if (!used || !put_attr(buf, cap, &used, NFQA_VERDICT_HDR, &vh, sizeof(vh)))
        return 0;
    return finish(buf, used);
}

size_t nfq_next_message(const uint8_t *buf, size_t len, size_t offset, size_t *msg_len)
{
    *msg_len = 0;
    if (offset >= len || len - offset < NLMSG_HDRLEN)
        return len;
    struct nlmsghdr nlh;
    memcpy(&nlh, buf + offset, sizeof(nlh));
    if (nlh.nlmsg_len < NLMSG_HDRLEN || nlh.nlmsg_len > len - offset)
        return len; /* a broken length makes the rest of the datagram unusable */
    *msg_len = nlh.nlmsg_len;
    size_t next = offset + NLMSG_ALIGN(nlh.nlmsg_len);
    return next < len ? next : len;
}

uint16_t nfq_message_type(const uint8_t *msg, size_t len)
{
    if (len < NLMSG_HDRLEN)
        return 0;
    struct nlmsghdr nlh;
    memcpy(&nlh, msg, sizeof(nlh));
    return nlh.nlmsg_type;
}

int nfq_parse_error(const uint8_t *msg, size_t len, int *error, uint32_t *seq)
{
    if (len < NLMSG_HDRLEN)
        return NFQ_PARSE_TRUNCATED;
    struct nlmsghdr nlh;
    memcpy(&nlh, msg, sizeof(nlh));
    if (nlh.nlmsg_type != NLMSG_ERROR)
        return NFQ_PARSE_NOT_PACKET;
    /* struct nlmsgerr: int error, then (at least the header of) the request. */
    if (len < NLMSG_HDRLEN + sizeof(int) + sizeof(struct nlmsghdr))
        return NFQ_PARSE_TRUNCATED;
    struct nlmsgerr err;
    memcpy(&err, msg + NLMSG_HDRLEN, sizeof(err));
    *error = err.error;
    *seq = err.msg.nlmsg_seq;
    return NFQ_PARSE_OK;
}

/* Exact sizes of the fixed-size attributes we read (selftest nf_queue.c does the same). */
static int attr_size_ok(uint16_t type, size_t value_len)
{
    switch (type) {
    case NFQA_PACKET_HDR:
        return value_len == sizeof(struct nfqnl_msg_packet_hdr);
    case NFQA_TIMESTAMP:
        return value_len == sizeof(struct nfqnl_msg_packet_timestamp);
    case NFQA_MARK:
    case NFQA_CAP_LEN:
    case NFQA_SKB_INFO:
        return value_len == sizeof(uint32_t);
    default:
        return 1;
    }
}

static void take_attr(struct nfq_packet *out, uint16_t type, const uint8_t *value,
                      size_t value_len, int *has_hdr, int *has_cap_len)
{
    switch (type) {
    case NFQA_PACKET_HDR:
        out->packet_id = load_be32(value);
        out->hw_protocol = (uint16_t)((value[4] << 8) | value[5]);
        out->hook = value[6];
        out->has_packet_id = 1;
        *has_hdr = 1;
        break;
    case NFQA_TIMESTAMP: {
        /* Only present when the skb carries a receive timestamp. */
        uint64_t sec = load_be64(value), usec = load_be64(value + 8);
        out->timestamp_ms = sec * 1000u + usec / 1000u;
        out->has_timestamp = 1;
        break;
    }
    case NFQA_PAYLOAD:
        out->payload = value;
        out->payload_len = (uint32_t)value_len;
        break;
    case NFQA_CAP_LEN:
        /* Sent only when the packet was longer than the copy range. */
        out->packet_len = load_be32(value);
        *has_cap_len = 1;
        break;
    case NFQA_SKB_INFO:
        out->skb_info = load_be32(value);
        break;
    case NFQA_MARK:
        out->mark = load_be32(value);
        break;
    default:
        break; /* unknown or unused: newer kernels add attributes */
    }
}

int nfq_parse_packet(const uint8_t *msg, size_t len, struct nfq_packet *out)
{
    memset(out, 0, sizeof(*out));
    if (len < NFQ_HEADERS_LEN)
        return NFQ_PARSE_TRUNCATED;
    struct nlmsghdr nlh;
    memcpy(&nlh, msg, sizeof(nlh));
    if (nlh.nlmsg_len > len || nlh.nlmsg_len < NFQ_HEADERS_LEN)
        return NFQ_PARSE_TRUNCATED;
    if (nlh.nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
        return NFQ_PARSE_NOT_PACKET;
    struct nfgenmsg nfg;
    memcpy(&nfg, msg + NLMSG_HDRLEN, sizeof(nfg));
    out->queue_num = ntohs(nfg.res_id);

    int has_hdr = 0, has_cap_len = 0;
    size_t end = nlh.nlmsg_len, off = NFQ_HEADERS_LEN;
    while (end - off >= NLA_HDRLEN) {
        struct nlattr nla;
        memcpy(&nla, msg + off, sizeof(nla));
        if (nla.nla_len < NLA_HDRLEN || nla.nla_len > end - off)
            return NFQ_PARSE_TRUNCATED;
        uint16_t type = nla.nla_type & NLA_TYPE_MASK;
        size_t value_len = nla.nla_len - NLA_HDRLEN;
        if (!attr_size_ok(type, value_len))
            return NFQ_PARSE_BAD_ATTR;
        take_attr(out, type, msg + off + NLA_HDRLEN, value_len, &has_hdr, &has_cap_len);
        size_t step = NLA_ALIGN(nla.nla_len);
        if (step >= end - off)
            break;
        off += step;
    }
    if (!has_hdr)
        return NFQ_PARSE_NO_PACKET_HDR;
    if (!has_cap_len)
        out->packet_len = out->payload_len;
    return NFQ_PARSE_OK;
}
