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
 *
 * Verdicts are owed: a send that fails is retried with backoff and the
 * buffer kept in order (a later NFQNL_MSG_VERDICT_BATCH covers every queued
 * id up to its own, so it must never overtake an earlier verdict).  When
 * sending keeps failing the loop fails closed: it queues nothing more, ends
 * with the error, and closing unbinds the queue so the kernel drops every
 * packet still waiting.  A packet message we cannot read leaves an id we
 * cannot name; the ids of that gap are dropped one by one before the next
 * verdict (answer_gap).
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
#define NFQ_SEND_RETRIES 8         /* pauses 1, 2, 4 ... 128 ms: about 0.25 s in all */
#define NFQ_SEND_BACKOFF_US 1000
#define NFQ_SEND_BACKOFF_MAX_US 128000
#define NFQ_GAP_DROP_MAX 1024      /* ids dropped one by one after an unreadable packet */
#define NFQ_MAX_OPEN_BATCH 1024   /* packets held in one open batch at most */
#define NFQ_FLUSH_PACKETS 256     /* answer at least this often under load ... */
#define NFQ_FLUSH_OCTETS 32768    /* ... or when this much rewritten data waits */
#define NFQ_ACK_WAIT_ROUNDS 20
#define NFQ_DRAIN_ROUNDS 16
#define NFQ_HISTORY_WINDOW_MS 60000 /* "per minute", DECISIONS.md §3 */

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
    int fatal;                  /* -errno: verdicts cannot be delivered, give up */
    uint32_t last_id;           /* highest packet id seen */
    int lost_ids;               /* a packet after last_id could not be read */
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
    if (config->batch == 0 || config->copy_range == 0 || config->copy_range > 0xffff ||
        config->history_per_minute > NFQ_HISTORY_SLOTS) {
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

/* One datagram to the kernel, retried with a doubling pause (1, 2, 4, ...
 * NFQ_SEND_BACKOFF_MAX_US) when sendto fails: memory pressure (ENOMEM,
 * ENOBUFS) passes, and giving up would leave packets without a verdict. */
static int send_buffer(struct nfq_loop *loop, const uint8_t *buf, size_t len)
{
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    uint32_t pause_us = NFQ_SEND_BACKOFF_US;
    for (int attempt = 0;; attempt++) {
        loop->work.counters.send_calls++;
        ssize_t n = sendto(loop->fd, buf, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
        if (n >= 0)
            return 0;
        int e = errno;
        loop->work.counters.send_errors++;
        if (attempt >= NFQ_SEND_RETRIES || e == EBADF || e == ENOTSOCK)
            return -e;
        if (e != EINTR) {
            struct timespec ts = {.tv_sec = pause_us / 1000000u,
                                  .tv_nsec = (long)(pause_us % 1000000u) * 1000};
            nanosleep(&ts, NULL);
            if (pause_us < NFQ_SEND_BACKOFF_MAX_US)
                pause_us *= 2;
        }
    }
}

/* Fail closed: verdicts cannot be delivered, so nothing more is queued
 * (a later batch verdict would sweep up the unanswered packets); the loop
 * ends with this error and closing it unbinds the queue, whereupon the
 * kernel drops every packet still waiting (nfqnl_recv_config). */
static void give_up(struct nfq_loop *loop, int error)
{
    if (loop->fatal == 0) {
        loop->fatal = error;
        loop->work.counters.verdict_failures++;
    }
}

/* Send the complete messages of the tx buffer (the open batch stays open).
 * On failure the buffer is kept, untouched: the verdicts in it are owed, and
 * the ones queued after them must never overtake them. */
static int send_tx(struct nfq_loop *loop)
{
    if (loop->fatal)
        return loop->fatal;
    if (loop->tx.len == 0)
        return 0;
    int rc = send_buffer(loop, loop->tx.buf, loop->tx.len);
    if (rc < 0) {
        give_up(loop, rc);
        return rc;
    }
    nfq_tx_sent(&loop->tx);
    return 0;
}

/* Close the open batch and send everything: called when the socket is idle. */
static int flush_verdicts(struct nfq_loop *loop)
{
    if (loop->fatal)
        return loop->fatal;
    if (nfq_tx_close_batch(&loop->tx) == NFQ_TX_FULL) {
        int rc = send_tx(loop);
        if (rc < 0)
            return rc;
        nfq_tx_close_batch(&loop->tx);
    }
    return send_tx(loop);
}

/* Queue a verdict without payload; 0, or -errno once the loop gave up. */
static int queue_verdict(struct nfq_loop *loop, uint32_t id, uint32_t verdict)
{
    if (loop->fatal)
        return loop->fatal;
    int rc = nfq_tx_verdict(&loop->tx, id, verdict);
    if (rc == NFQ_TX_FULL) {
        int sent = send_tx(loop);
        if (sent < 0)
            return sent;
        rc = nfq_tx_verdict(&loop->tx, id, verdict);
    }
    if (rc != NFQ_TX_OK) {
        /* An empty buffer that still cannot take a plain verdict: no verdict
         * can ever be given. */
        give_up(loop, -EMSGSIZE);
        return loop->fatal;
    }
    if (loop->tx.pending_count >= NFQ_MAX_OPEN_BATCH)
        nfq_tx_close_batch(&loop->tx); /* sent with the next flush or when full */
    return 0;
}

/* Queue a verdict carrying a rewritten packet.  Returns the verdict actually
 * given: the one asked for, or NFQ_VERDICT_DROP when the packet is too big
 * for a verdict message (*too_big set) -- dropped rather than let through
 * unchecked or left without a verdict.  -errno once the loop gave up. */
static int queue_verdict_payload(struct nfq_loop *loop, uint32_t id, uint32_t verdict,
                                 const uint8_t *payload, size_t len, int *too_big)
{
    *too_big = 0;
    if (loop->fatal)
        return loop->fatal;
    int rc = nfq_tx_verdict_payload(&loop->tx, id, verdict, payload, len);
    if (rc == NFQ_TX_FULL) {
        int sent = send_tx(loop);
        if (sent < 0)
            return sent;
        rc = nfq_tx_verdict_payload(&loop->tx, id, verdict, payload, len);
    }
    if (rc == NFQ_TX_OK)
        return (int)verdict;
    *too_big = 1;
    rc = queue_verdict(loop, id, NFQ_VERDICT_DROP);
    return rc < 0 ? rc : NFQ_VERDICT_DROP;
}

/* Count a verdict once it is final. */
static void count_verdict(struct nfq_loop *loop, int verdict)
{
    if (verdict == NFQ_VERDICT_ACCEPT)
        loop->work.counters.accepted++;
    else if (verdict >= 0)
        loop->work.counters.dropped++;
}

/* ---- ids we could not read -------------------------------------------- */

/* A packet message we could not parse (or a truncated datagram) holds a
 * packet we cannot answer: its id is unknown, but it lies between the last
 * id we saw and the next one (the kernel hands a queue's packets over in id
 * order).  A batch verdict for a later id would accept it, so the next
 * packet first drops every id of the gap one by one (ids in the gap that
 * never entered the queue -- lost to an overrun -- draw an ENOENT error,
 * counted in kernel_errors).  A gap too wide to answer id by id turns
 * batching off for good. */
static void note_lost_id(struct nfq_loop *loop)
{
    loop->lost_ids = 1;
    loop->work.counters.lost_ids++;
}

static void answer_gap(struct nfq_loop *loop, uint32_t next_id)
{
    uint32_t first = loop->last_id + 1;
    if (!loop->lost_ids) {
        loop->last_id = next_id;
        return;
    }
    loop->lost_ids = 0;
    uint32_t gap = next_id - first; /* ids first .. next_id - 1, wrap-safe */
    if (gap > NFQ_GAP_DROP_MAX) {
        loop->tx.no_batch = 1;
        loop->work.counters.batching_off = 1;
    } else {
        for (uint32_t i = 0; i < gap; i++)
            if (queue_verdict(loop, first + i, NFQ_VERDICT_DROP) < 0)
                break;
        loop->work.counters.gap_drops += gap;
    }
    loop->last_id = next_id;
}

/* ---- per packet ------------------------------------------------------- */

/* DECISIONS.md §3: at most history_per_minute records in any 60 s, a
 * sliding window (nfq_loop.h).  The history keeps the newest NFQ_HISTORY_SLOTS
 * records in time order, and history_per_minute <= NFQ_HISTORY_SLOTS
 * (nfq_loop_new), so it holds every record the window counts. */
int nfq_history_budget_left(const struct nfq_stats *w, uint32_t per_minute, uint64_t now)
{
    if (per_minute == 0)
        return 0;
    if (w->history_len < per_minute)
        return 1;
    uint64_t oldest_counted = w->history[w->history_len - per_minute].time_ms;
    /* A clock stepped back makes every record "recent": fail towards fewer. */
    return oldest_counted <= now && now - oldest_counted >= NFQ_HISTORY_WINDOW_MS;
}

static void record_error(struct nfq_loop *loop, const struct nfq_decision *d, int cause,
                         uint64_t my_time, uint64_t window, int clock)
{
    struct nfq_stats *w = &loop->work;
    uint64_t now = wall_ms();
    if (!nfq_history_budget_left(w, loop->cfg.history_per_minute, now)) {
        w->counters.history_skipped++;
        return;
    }
    if (w->history_len == NFQ_HISTORY_SLOTS) {
        memmove(&w->history[0], &w->history[1], sizeof(w->history[0]) * (NFQ_HISTORY_SLOTS - 1));
        w->history_len--;
    }
    struct nfq_error_record *r = &w->history[w->history_len++];
    memset(r, 0, sizeof(*r));
    r->time_ms = now;
    r->my_time_ms = my_time;
    r->peer_time_ms = d ? d->peer_time_ms : 0;
    r->window_ms = window;
    r->cause = (uint8_t)cause;
    r->clock = (uint8_t)clock;
    if (d) {
        /* Taken by nfq_enforce_packet before it stripped the packet. */
        memcpy(r->src, d->src, sizeof(r->src));
        r->family = d->family;
    }
    w->counters.history_recorded++;
    loop->history_changed = 1;
}

static int enforce(struct nfq_loop *loop, struct nfq_packet *p, uint64_t local_ms,
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
        record_error(loop, &d, d.cause, now, window, clock);
    if (d.strip_error)
        c->strip_errors++;
    int verdict;
    if (d.modified) {
        int too_big;
        verdict = queue_verdict_payload(loop, p->packet_id, d.verdict, p->payload + d.start,
                                        d.len, &too_big);
        if (too_big)
            c->too_big++;
        else if (verdict >= 0)
            c->modified++;
    } else {
        int rc = queue_verdict(loop, p->packet_id, d.verdict);
        verdict = rc < 0 ? rc : (int)d.verdict;
    }
    count_verdict(loop, verdict);
    return verdict < 0 ? verdict : 0;
}

static int stamp(struct nfq_loop *loop, struct nfq_packet *p, uint64_t local_ms)
{
    struct nfq_counters *c = &loop->work.counters;
    size_t out_len = 0;
    int rc = NFQ_PKT_INCOMPLETE;
    if (p->packet_len <= p->payload_len)
        rc = nfq_stamp_d3p(p->payload, p->payload_len, loop->cfg.d3p_proto, local_ms,
                           loop->scratch, loop->scratch_cap, &out_len);
    int verdict = NFQ_VERDICT_DROP, too_big = rc == NFQ_PKT_TOO_BIG;
    if (rc == NFQ_PKT_OK) {
        verdict = queue_verdict_payload(loop, p->packet_id, NFQ_VERDICT_ACCEPT, loop->scratch,
                                        out_len, &too_big);
    } else {
        /* An unstamped packet would skip the receiver's check: drop it. */
        int q = queue_verdict(loop, p->packet_id, NFQ_VERDICT_DROP);
        if (q < 0)
            verdict = q;
    }
    if (too_big)
        c->too_big++;
    if (verdict == NFQ_VERDICT_ACCEPT) {
        c->output_packets++;
        c->modified++;
    } else if (verdict >= 0) {
        c->output_errors++;
    }
    count_verdict(loop, verdict);
    return verdict < 0 ? verdict : 0;
}

static int handle_packet(struct nfq_loop *loop, struct nfq_packet *p, uint64_t local_ms,
                         uint64_t window)
{
    struct nfq_counters *c = &loop->work.counters;
    answer_gap(loop, p->packet_id);
    if (p->packet_len > p->payload_len)
        c->truncated++;
    if (p->skb_info & NFQA_SKB_GSO)
        c->gso_packets++;
    switch (loop->cfg.mode) {
    case NFQ_MODE_STAMP:
        return stamp(loop, p, local_ms);
    case NFQ_MODE_PASS: {
        int rc = queue_verdict(loop, p->packet_id, NFQ_VERDICT_ACCEPT);
        count_verdict(loop, rc < 0 ? rc : NFQ_VERDICT_ACCEPT);
        return rc;
    }
    default:
        return enforce(loop, p, local_ms, window);
    }
}

/* A packet message whose attributes are broken but whose id we read
 * (NFQA_PACKET_HDR comes first).  Policy (nfq.py docstring): dropped under
 * every --action and --fail-open.  --action count passes what we could
 * judge; of this message we cannot even trust the packet we would accept,
 * and fail-open is the kernel's answer to a full queue, not to an
 * unreadable message. */
static int handle_unreadable(struct nfq_loop *loop, const struct nfq_packet *p)
{
    struct nfq_counters *c = &loop->work.counters;
    answer_gap(loop, p->packet_id);
    c->parse_errors++;
    if (loop->cfg.mode == NFQ_MODE_ENFORCE) {
        c->input_packets++;
        c->input_malformed++;
    }
    int rc = queue_verdict(loop, p->packet_id, NFQ_VERDICT_DROP);
    count_verdict(loop, rc < 0 ? rc : NFQ_VERDICT_DROP);
    return rc;
}

/* One netlink datagram: normally one packet message, or an error answer.
 * Returns the error of an NLMSG_ERROR whose sequence number is ack_seq
 * (1 = not seen), so the setup code can wait for its acknowledgement. */
static int handle_datagram(struct nfq_loop *loop, uint8_t *buf, size_t len, uint64_t local_ms,
                           uint64_t window, uint32_t ack_seq)
{
    int ack = 1;
    size_t offset = 0;
    while (offset < len && !loop->fatal) {
        size_t msg_len;
        size_t next = nfq_next_message(buf, len, offset, &msg_len);
        if (msg_len == 0) {
            /* The rest of the datagram cannot be delimited: if it held a
             * packet, that packet is now unanswered. */
            loop->work.counters.parse_errors++;
            note_lost_id(loop);
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
                handle_unreadable(loop, &p);
            } else {
                /* No id: no verdict can name this packet (see answer_gap). */
                loop->work.counters.parse_errors++;
                note_lost_id(loop);
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
        if (h->msg_flags & MSG_TRUNC) {
            /* Cannot happen (slots hold copy_range + overhead); if it does,
             * the cut message cannot be delimited and its packet is lost to
             * us, which handle_datagram notes. */
            c->parse_errors++;
            note_lost_id(loop);
        }
        int a = handle_datagram(loop, loop->iov[i].iov_base, loop->msgs[i].msg_len, local_ms,
                                window, ack_seq);
        if (a != 1 && ack)
            *ack = a;
    }
    return loop->fatal ? loop->fatal : n;
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
            loop->tx.len >= NFQ_FLUSH_OCTETS) {
            rc = flush_verdicts(loop);
            if (rc < 0)
                break;
        }
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
    int flushed = flush_verdicts(loop);
    if (rc == 0)
        rc = flushed;
    /* After a failure nothing more is sent (see give_up): the caller's
     * nfq_loop_close unbinds and the kernel drops what is outstanding. */
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
        int rc = flush_verdicts(loop);
        if (rc < 0)
            return rc;
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
    /* After a failure the owed verdicts are not retried: unbinding makes the
     * kernel drop every packet still queued (fail closed). */
    int rc = loop->fatal ? 0 : flush_verdicts(loop);
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
