/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_loop.c - socket lifecycle and the receive / verify / verdict loop.
 *
 * The cost of an NFQUEUE consumer is mostly system calls and wake-ups per
 * packet.  This loop takes many packets per recvmmsg() (MSG_WAITFORONE:
 * block for the first, then take whatever else is queued), and answers a run
 * of packets with one NFQNL_MSG_VERDICT_BATCH, packing every verdict message
 * of a round into one send (nfq_verdict.c).  Verdicts are sent when the
 * socket goes idle (a round comes back short, or a non-blocking receive finds
 * nothing), so no packet waits for further traffic, and under sustained load
 * at least every NFQ_FLUSH_PACKETS packets.  After a short round the loop may
 * sleep coalesce_us (interrupt moderation) so the next round is a batch
 * rather than a single packet; measured in bench/bench_nfq.py.
 *
 * Error policy (kernel selftest nf_queue.c, Suricata source-nfq.c):
 * EINTR -> retry; EAGAIN -> idle: send pending verdicts and look at the stop
 * flag; ENOBUFS -> the kernel could not hand us some packets (they were
 * dropped, or accepted with fail-open, and never entered the queue), count and
 * go on; anything else ends the loop after the pending verdicts are sent.
 */
#define _GNU_SOURCE
#include "nfq_loop.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>

#include "d3p_window.h"
#include "nfq_msg.h"
#include "nfq_packet.h"
#include "nfq_verdict.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

/* Room for the netlink attributes around the payload in one packet message
 * (header, mark, timestamp, interfaces, hardware address, cap len, skb info);
 * we do not ask for conntrack or security context attributes. */
#define NFQ_MESSAGE_OVERHEAD 4096
#define NFQ_TX_MIN 262144
#define NFQ_SEND_RETRIES 3
#define NFQ_MAX_OPEN_BATCH 1024   /* packets held in one open batch at most */
#define NFQ_FLUSH_PACKETS 256     /* answer at least this often under load ... */
#define NFQ_FLUSH_OCTETS 32768    /* ... or when this much rewritten data waits */
#define NFQ_ACK_WAIT_ROUNDS 20
#define NFQ_DRAIN_ROUNDS 16

struct nfq_loop {
    struct nfq_config cfg;
    int fd;
    uint32_t seq;
    size_t slot_size;
    uint8_t *rx;
    struct mmsghdr *msgs;
    struct iovec *iov;
    uint8_t *txbuf;
    struct nfq_tx tx;
    uint8_t *scratch;
    size_t scratch_cap;
    uint64_t window_ms;         /* atomic */
    int stop;                   /* atomic */
    struct nfq_stats work;      /* owned by the loop thread */
    int history_changed;
    uint64_t minute_start_ms;
    uint32_t minute_count;
    uint32_t pub_seq;           /* atomic; odd while a snapshot is written */
    struct nfq_stats pub;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void publish(struct nfq_loop *loop)
{
    uint32_t s = __atomic_load_n(&loop->pub_seq, __ATOMIC_RELAXED);
    __atomic_store_n(&loop->pub_seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    loop->work.window_ms = __atomic_load_n(&loop->window_ms, __ATOMIC_RELAXED);
    loop->work.published_ms = wall_ms();
    loop->work.counters.verdict_messages = loop->tx.messages;
    memcpy(&loop->pub.counters, &loop->work.counters, sizeof(loop->pub.counters));
    loop->pub.window_ms = loop->work.window_ms;
    loop->pub.published_ms = loop->work.published_ms;
    loop->pub.last_clock = loop->work.last_clock;
    loop->pub.running = loop->work.running;
    if (loop->history_changed) {
        loop->pub.history_len = loop->work.history_len;
        memcpy(loop->pub.history, loop->work.history, sizeof(loop->pub.history));
        loop->history_changed = 0;
    }
    __atomic_store_n(&loop->pub_seq, s + 2, __ATOMIC_RELEASE);
}

void nfq_loop_read_stats(struct nfq_loop *loop, struct nfq_stats *out)
{
    for (;;) {
        uint32_t before = __atomic_load_n(&loop->pub_seq, __ATOMIC_ACQUIRE);
        if (before & 1) {
            sched_yield();
            continue;
        }
        memcpy(out, &loop->pub, sizeof(*out));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&loop->pub_seq, __ATOMIC_RELAXED) == before)
            return;
    }
}

void nfq_loop_stop(struct nfq_loop *loop)
{
    __atomic_store_n(&loop->stop, 1, __ATOMIC_RELEASE);
}

void nfq_loop_set_window(struct nfq_loop *loop, uint64_t window_ms)
{
    __atomic_store_n(&loop->window_ms, window_ms, __ATOMIC_RELEASE);
}

struct nfq_loop *nfq_loop_new(const struct nfq_config *config)
{
    if (config->batch == 0 || config->copy_range == 0 || config->copy_range > 0xffff) {
        errno = EINVAL;
        return NULL;
    }
    struct nfq_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->cfg = *config;
    loop->fd = -1;
    loop->window_ms = config->window_ms;
    loop->slot_size = config->copy_range + NFQ_MESSAGE_OVERHEAD;
    size_t txcap = 2 * ((size_t)config->copy_range + 128);
    if (txcap < NFQ_TX_MIN)
        txcap = NFQ_TX_MIN;
    loop->scratch_cap = (size_t)config->copy_range + 64;
    loop->rx = malloc(loop->slot_size * config->batch);
    loop->msgs = calloc(config->batch, sizeof(*loop->msgs));
    loop->iov = calloc(config->batch, sizeof(*loop->iov));
    loop->txbuf = malloc(txcap);
    loop->scratch = malloc(loop->scratch_cap);
    if (!loop->rx || !loop->msgs || !loop->iov || !loop->txbuf || !loop->scratch) {
        nfq_loop_free(loop);
        errno = ENOMEM;
        return NULL;
    }
    for (uint32_t i = 0; i < config->batch; i++) {
        loop->iov[i].iov_base = loop->rx + (size_t)i * loop->slot_size;
        loop->iov[i].iov_len = loop->slot_size;
        loop->msgs[i].msg_hdr.msg_iov = &loop->iov[i];
        loop->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    nfq_tx_init(&loop->tx, loop->txbuf, txcap, config->queue_num);
    loop->work.window_ms = config->window_ms;
    publish(loop);
    return loop;
}

void nfq_loop_free(struct nfq_loop *loop)
{
    if (!loop)
        return;
    if (loop->fd >= 0)
        close(loop->fd);
    free(loop->rx);
    free(loop->msgs);
    free(loop->iov);
    free(loop->txbuf);
    free(loop->scratch);
    free(loop);
}

/* ---- sending ---------------------------------------------------------- */

static int send_buffer(struct nfq_loop *loop, const uint8_t *buf, size_t len)
{
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    for (int attempt = 0;; attempt++) {
        loop->work.counters.send_calls++;
        ssize_t n = sendto(loop->fd, buf, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
        if (n >= 0)
            return 0;
        /* Transient: memory pressure or a signal; Suricata retries too. */
        if ((errno == EINTR || errno == ENOBUFS || errno == EAGAIN) &&
            attempt < NFQ_SEND_RETRIES)
            continue;
        loop->work.counters.send_errors++;
        return -errno;
    }
}

/* Send the complete messages of the tx buffer (the open batch stays open). */
static int send_tx(struct nfq_loop *loop)
{
    if (loop->tx.len == 0)
        return 0;
    int rc = send_buffer(loop, loop->tx.buf, loop->tx.len);
    nfq_tx_sent(&loop->tx);
    return rc;
}

/* Close the open batch and send everything: called when the socket is idle. */
static int flush_verdicts(struct nfq_loop *loop)
{
    if (nfq_tx_close_batch(&loop->tx) == NFQ_TX_FULL) {
        send_tx(loop);
        nfq_tx_close_batch(&loop->tx);
    }
    return send_tx(loop);
}

static void queue_verdict(struct nfq_loop *loop, uint32_t id, uint32_t verdict)
{
    if (nfq_tx_verdict(&loop->tx, id, verdict) == NFQ_TX_FULL) {
        send_tx(loop);
        nfq_tx_verdict(&loop->tx, id, verdict);
    }
    if (loop->tx.pending_count >= NFQ_MAX_OPEN_BATCH)
        nfq_tx_close_batch(&loop->tx); /* sent with the next flush or when full */
}

static void queue_verdict_payload(struct nfq_loop *loop, uint32_t id, uint32_t verdict,
                                  const uint8_t *payload, size_t len)
{
    int rc = nfq_tx_verdict_payload(&loop->tx, id, verdict, payload, len);
    if (rc == NFQ_TX_FULL) {
        send_tx(loop);
        rc = nfq_tx_verdict_payload(&loop->tx, id, verdict, payload, len);
    }
    if (rc != NFQ_TX_OK) {
        /* Cannot carry the rewritten packet: drop it rather than let it
         * through unchecked or leave it without a verdict. */
        loop->work.counters.send_errors++;
        queue_verdict(loop, id, NFQ_VERDICT_DROP);
    }
}

/* ---- per packet ------------------------------------------------------- */

static void record_error(struct nfq_loop *loop, const struct nfq_packet *p, int cause,
                         uint64_t my_time, uint64_t peer_time, uint64_t window, int clock)
{
    struct nfq_stats *w = &loop->work;
    uint64_t now = wall_ms();
    if (now - loop->minute_start_ms >= 60000 || now < loop->minute_start_ms) {
        loop->minute_start_ms = now;
        loop->minute_count = 0;
    }
    if (loop->minute_count >= loop->cfg.history_per_minute) {
        w->counters.history_skipped++;
        return;
    }
    loop->minute_count++;
    if (w->history_len == NFQ_HISTORY_SLOTS) {
        memmove(&w->history[0], &w->history[1], sizeof(w->history[0]) * (NFQ_HISTORY_SLOTS - 1));
        w->history_len--;
    }
    struct nfq_error_record *r = &w->history[w->history_len++];
    memset(r, 0, sizeof(*r));
    r->time_ms = now;
    r->my_time_ms = my_time;
    r->peer_time_ms = peer_time;
    r->window_ms = window;
    r->cause = (uint8_t)cause;
    r->clock = (uint8_t)clock;
    nfq_ip_source(p->payload, p->payload_len, r->src, &r->family);
    w->counters.history_recorded++;
    loop->history_changed = 1;
}

static void enforce(struct nfq_loop *loop, struct nfq_packet *p, uint64_t local_ms,
                    uint64_t window)
{
    struct nfq_counters *c = &loop->work.counters;
    int clock = p->has_timestamp ? NFQ_CLOCK_KERNEL : NFQ_CLOCK_LOCAL;
    uint64_t now = p->has_timestamp ? p->timestamp_ms : local_ms;
    if (p->has_timestamp)
        c->clock_kernel++;
    else
        c->clock_local++;
    loop->work.last_clock = (uint32_t)clock;

    struct nfq_decision d;
    /* The payload points into our own receive buffer, so stripping in place is fine. */
    nfq_enforce_packet((uint8_t *)p->payload, p->payload_len, p->packet_len, loop->cfg.d3p_proto,
                       now, window, loop->cfg.action, loop->cfg.strip, &d);
    c->input_packets++;
    switch (d.cause) {
    case D3P_TOO_OLD:
        c->input_too_old++;
        break;
    case D3P_TOO_NEW:
        c->input_too_new++;
        break;
    case D3P_MALFORMED:
        c->input_malformed++;
        break;
    default:
        break;
    }
    if (d.cause != D3P_FRESH)
        record_error(loop, p, d.cause, now, d.peer_time_ms, window, clock);
    if (d.strip_error)
        c->strip_errors++;
    if (d.modified) {
        c->modified++;
        queue_verdict_payload(loop, p->packet_id, d.verdict, p->payload + d.start, d.len);
    } else {
        queue_verdict(loop, p->packet_id, d.verdict);
    }
    if (d.verdict == NFQ_VERDICT_ACCEPT)
        c->accepted++;
    else
        c->dropped++;
}

static void stamp(struct nfq_loop *loop, struct nfq_packet *p, uint64_t local_ms)
{
    struct nfq_counters *c = &loop->work.counters;
    size_t out_len = 0;
    int rc = NFQ_PKT_INCOMPLETE;
    if (p->packet_len <= p->payload_len)
        rc = nfq_stamp_d3p(p->payload, p->payload_len, loop->cfg.d3p_proto, local_ms,
                           loop->scratch, loop->scratch_cap, &out_len);
    if (rc == NFQ_PKT_OK) {
        c->output_packets++;
        c->modified++;
        c->accepted++;
        queue_verdict_payload(loop, p->packet_id, NFQ_VERDICT_ACCEPT, loop->scratch, out_len);
    } else {
        /* An unstamped packet would skip the receiver's check: drop it. */
        c->output_errors++;
        c->dropped++;
        queue_verdict(loop, p->packet_id, NFQ_VERDICT_DROP);
    }
}

static void handle_packet(struct nfq_loop *loop, struct nfq_packet *p, uint64_t local_ms,
                          uint64_t window)
{
    struct nfq_counters *c = &loop->work.counters;
    if (p->packet_len > p->payload_len)
        c->truncated++;
    if (p->skb_info & NFQA_SKB_GSO)
        c->gso_packets++;
    switch (loop->cfg.mode) {
    case NFQ_MODE_STAMP:
        stamp(loop, p, local_ms);
        break;
    case NFQ_MODE_PASS:
        c->accepted++;
        queue_verdict(loop, p->packet_id, NFQ_VERDICT_ACCEPT);
        break;
    default:
        enforce(loop, p, local_ms, window);
        break;
    }
}

/* One netlink datagram: normally one packet message, or an error answer.
 * Returns the error of an NLMSG_ERROR whose sequence number is ack_seq
 * (1 = not seen), so the setup code can wait for its acknowledgement. */
static int handle_datagram(struct nfq_loop *loop, uint8_t *buf, size_t len, uint64_t local_ms,
                           uint64_t window, uint32_t ack_seq)
{
    int ack = 1;
    size_t offset = 0;
    while (offset < len) {
        size_t msg_len;
        size_t next = nfq_next_message(buf, len, offset, &msg_len);
        if (msg_len == 0) {
            loop->work.counters.parse_errors++;
            break;
        }
        uint8_t *msg = buf + offset;
        uint16_t type = nfq_message_type(msg, msg_len);
        if (type == NLMSG_ERROR) {
            int error;
            uint32_t seq;
            if (nfq_parse_error(msg, msg_len, &error, &seq) == NFQ_PARSE_OK) {
                if (ack_seq && seq == ack_seq)
                    ack = error;
                else if (error)
                    loop->work.counters.kernel_errors++;
            }
        } else if (type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) {
            struct nfq_packet p;
            int rc = nfq_parse_packet(msg, msg_len, &p);
            if (rc == NFQ_PARSE_OK) {
                handle_packet(loop, &p, local_ms, window);
            } else if (p.has_packet_id) {
                /* Broken attributes but a known id: a verdict is still owed. */
                loop->work.counters.parse_errors++;
                if (loop->cfg.mode == NFQ_MODE_ENFORCE) {
                    loop->work.counters.input_packets++;
                    loop->work.counters.input_malformed++;
                }
                loop->work.counters.dropped++;
                queue_verdict(loop, p.packet_id, NFQ_VERDICT_DROP);
            } else {
                loop->work.counters.parse_errors++;
            }
        }
        offset = next;
    }
    return ack;
}

/* ---- receiving -------------------------------------------------------- */

/* One recvmmsg round; returns datagrams handled, 0 on idle, or -errno. */
static int receive_round(struct nfq_loop *loop, int flags, uint32_t ack_seq, int *ack)
{
    struct nfq_counters *c = &loop->work.counters;
    c->recv_calls++;
    int n = recvmmsg(loop->fd, loop->msgs, loop->cfg.batch, flags, NULL);
    if (n < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
            return 0;
        if (e == ENOBUFS) {
            c->enobufs++;
            return 0;
        }
        return -e;
    }
    uint64_t local_ms = wall_ms();
    uint64_t window = __atomic_load_n(&loop->window_ms, __ATOMIC_ACQUIRE);
    c->datagrams += (uint64_t)n;
    for (int i = 0; i < n; i++) {
        struct msghdr *h = &loop->msgs[i].msg_hdr;
        if (h->msg_flags & MSG_TRUNC)
            c->parse_errors++; /* cannot happen: slots hold copy_range + overhead */
        int a = handle_datagram(loop, loop->iov[i].iov_base, loop->msgs[i].msg_len, local_ms,
                                window, ack_seq);
        if (a != 1 && ack)
            *ack = a;
    }
    return n;
}

static void coalesce(uint32_t us)
{
    struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000};
    nanosleep(&ts, NULL);
}

int nfq_loop_run(struct nfq_loop *loop)
{
    int rc = 0;
    /* The default 50 us timer slack would double a short coalescing sleep. */
    if (loop->cfg.coalesce_us)
        prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    loop->work.running = 1;
    publish(loop);
    while (!__atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE)) {
        int holding = loop->tx.pending || loop->tx.len;
        int n = receive_round(loop, holding ? MSG_DONTWAIT : MSG_WAITFORONE, 0, NULL);
        if (n < 0) {
            rc = n;
            break;
        }
        /* Fewer datagrams than asked for: the socket is drained for now, so
         * answer everything.  Under sustained load the socket never drains:
         * answer once enough is held, or the kernel queue (maxlen) fills with
         * packets we already judged. */
        if ((uint32_t)n < loop->cfg.batch || loop->tx.pending_count >= NFQ_FLUSH_PACKETS ||
            loop->tx.len >= NFQ_FLUSH_OCTETS)
            flush_verdicts(loop);
        publish(loop);
        /* Interrupt moderation: a loop faster than its traffic otherwise
         * wakes up (and makes two system calls) for every single packet.
         * Sleeping only after a partial round, with every verdict sent,
         * delays no packet we already hold. */
        if (n > 0 && (uint32_t)n < loop->cfg.batch / 8 && loop->cfg.coalesce_us)
            coalesce(loop->cfg.coalesce_us);
    }
    /* Answer what is already in the socket before returning (bounded: under
     * load the socket never empties; what is left is dropped by the kernel
     * when the queue is unbound). */
    for (int round = 0; rc == 0 && round < NFQ_DRAIN_ROUNDS; round++)
        if (receive_round(loop, MSG_DONTWAIT, 0, NULL) <= 0)
            break;
    flush_verdicts(loop);
    loop->work.running = 0;
    publish(loop);
    return rc;
}

/* ---- setup ------------------------------------------------------------ */

static void set_buffer(int fd, int force_opt, int opt, uint32_t bytes)
{
    int value = (int)bytes;
    /* The FORCE variants pass the rmem_max/wmem_max caps (CAP_NET_ADMIN, which
     * binding a queue needs anyway); fall back to the capped option. */
    if (setsockopt(fd, SOL_SOCKET, force_opt, &value, sizeof(value)) < 0)
        setsockopt(fd, SOL_SOCKET, opt, &value, sizeof(value));
}

static int configure_socket(struct nfq_loop *loop)
{
    int fd = loop->fd, one = 1;
    if (loop->cfg.rcvbuf)
        set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, loop->cfg.rcvbuf);
    set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, (uint32_t)loop->tx.cap + 4096);
    /* The kernel may double the value; a send larger than sndbuf fails with
     * EMSGSIZE, so never build more than it takes. */
    int sndbuf = 0;
    socklen_t sl = sizeof(sndbuf);
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) == 0 && sndbuf > 4096 &&
        (size_t)sndbuf - 4096 < loop->tx.cap)
        loop->tx.cap = (size_t)sndbuf - 4096;
    /* Overruns: the kernel drops (or fail-open accepts) what does not fit;
     * being told with ENOBUFS changes nothing for us ("drop the packets
     * instead", Suricata). */
    if (!loop->cfg.report_enobufs &&
        setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one)) < 0)
        return -errno;
    /* Error answers carry only the header of our message, not a 64 KiB payload. */
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    /* Bounded blocking receive: the stop flag is looked at this often. */
    uint32_t ms = loop->cfg.idle_timeout_ms ? loop->cfg.idle_timeout_ms : 200;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return -errno;
    return 0;
}

static int bind_queue(struct nfq_loop *loop)
{
    uint32_t flags = 0, mask = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO;
    if (loop->cfg.fail_open)
        flags |= NFQA_CFG_F_FAIL_OPEN;
    if (loop->cfg.gso)
        flags |= NFQA_CFG_F_GSO;
    uint8_t msg[128];
    uint32_t seq = ++loop->seq;
    size_t len = nfq_build_cfg_bind(msg, sizeof(msg), seq, loop->cfg.queue_num,
                                    NFQNL_COPY_PACKET, loop->cfg.copy_range,
                                    loop->cfg.queue_maxlen, flags, mask);
    int rc = send_buffer(loop, msg, len);
    if (rc < 0)
        return rc;
    /* Packets may already arrive before the acknowledgement; they are
     * handled (and answered) like any other. */
    for (int round = 0; round < NFQ_ACK_WAIT_ROUNDS; round++) {
        int ack = 1;
        int n = receive_round(loop, MSG_WAITFORONE, seq, &ack);
        if (n < 0)
            return n;
        flush_verdicts(loop);
        if (ack != 1)
            return ack; /* 0, or -errno such as -EBUSY (queue taken), -EPERM */
    }
    return -ETIMEDOUT;
}

int nfq_loop_open(struct nfq_loop *loop)
{
    loop->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (loop->fd < 0)
        return -errno;
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    int rc = 0;
    if (bind(loop->fd, (struct sockaddr *)&local, sizeof(local)) < 0)
        rc = -errno;
    if (rc == 0)
        rc = configure_socket(loop);
    if (rc == 0)
        rc = bind_queue(loop);
    if (rc != 0) {
        close(loop->fd);
        loop->fd = -1;
    }
    publish(loop);
    return rc;
}

int nfq_loop_close(struct nfq_loop *loop)
{
    if (loop->fd < 0)
        return 0;
    int rc = flush_verdicts(loop);
    uint8_t msg[64];
    size_t len = nfq_build_cfg_cmd(msg, sizeof(msg), ++loop->seq, loop->cfg.queue_num,
                                   NFQNL_CFG_CMD_UNBIND, 0);
    int unbind = send_buffer(loop, msg, len);
    if (rc == 0)
        rc = unbind;
    if (close(loop->fd) < 0 && rc == 0)
        rc = -errno;
    loop->fd = -1;
    publish(loop);
    return rc;
}
