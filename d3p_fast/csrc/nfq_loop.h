/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_loop.h - the NFQUEUE receive / verify / verdict loop for one queue.
 *
 * Talks nfnetlink_queue directly (kernel headers only).  One loop serves one
 * queue; several queues mean several loops, each in its own thread.  The loop
 * publishes its counters into a snapshot that another thread reads at any time
 * (nfq_loop_read_stats, a sequence lock), and takes a new window or a stop
 * request through atomic fields, so Python never stops it to look inside.
 *
 * Counters follow `show crypto gkm gm replay` (seed document): input packets,
 * input error packets by cause, output packets, output error packets, and an
 * error history sampled at no more than history_per_minute entries in any
 * 60 s (a sliding window; DECISIONS.md §3: at most 10 a minute, newest last).
 */
#ifndef D3P_FAST_NFQ_LOOP_H
#define D3P_FAST_NFQ_LOOP_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */

enum nfq_mode {
    NFQ_MODE_ENFORCE = 0,  /* window check on received D3P packets */
    NFQ_MODE_STAMP = 1,    /* insert a D3P header into outgoing packets */
    NFQ_MODE_PASS = 2      /* accept everything: the loop with verification off */
};

enum nfq_clock {
    NFQ_CLOCK_NONE = 0,
    NFQ_CLOCK_KERNEL = 1,  /* NFQA_TIMESTAMP: when the kernel stamped the skb */
    NFQ_CLOCK_LOCAL = 2    /* CLOCK_REALTIME read by the loop (no kernel stamp) */
};

#define NFQ_HISTORY_SLOTS 32

struct nfq_config {
    uint16_t queue_num;
    uint8_t mode;              /* enum nfq_mode */
    uint8_t action;            /* enum nfq_action */
    uint8_t strip;             /* enforce: remove the D3P header of passing packets */
    uint8_t fail_open;         /* NFQA_CFG_F_FAIL_OPEN: accept when the queue is full */
    uint8_t gso;               /* NFQA_CFG_F_GSO: take GSO packets unsegmented */
    uint8_t report_enobufs;    /* do not set NETLINK_NO_ENOBUFS (tests the overrun path) */
    uint8_t d3p_proto;         /* IP protocol number of D3P */
    uint32_t copy_range;       /* octets of each packet copied to us */
    uint32_t queue_maxlen;     /* NFQA_CFG_QUEUE_MAXLEN, 0 = kernel default */
    uint32_t rcvbuf;           /* SO_RCVBUF(FORCE) octets, 0 = leave alone */
    uint32_t batch;            /* datagrams per recvmmsg() */
    uint32_t history_per_minute; /* 0 .. NFQ_HISTORY_SLOTS */
    uint32_t idle_timeout_ms;  /* SO_RCVTIMEO: the longest a stop request waits */
    uint32_t coalesce_us;      /* after answering a partial round, let packets
                                  gather this long before receiving again (0: no) */
    uint64_t window_ms;
};

struct nfq_error_record {
    uint64_t time_ms;          /* local wall clock when recorded */
    uint64_t my_time_ms;       /* N, the receiver time used by the check */
    uint64_t peer_time_ms;     /* T, the packet's timestamp (0 if malformed) */
    uint64_t window_ms;        /* W */
    uint8_t src[16];           /* source address, 4 or 16 octets used */
    uint8_t family;            /* 4, 6, or 0 when not IP */
    uint8_t cause;             /* enum d3p_verdict */
    uint8_t clock;             /* enum nfq_clock of my_time */
    uint8_t reserved[5];
};

struct nfq_counters {
    uint64_t input_packets;    /* packets the enforcer checked */
    uint64_t input_too_old;
    uint64_t input_too_new;
    uint64_t input_malformed;
    uint64_t output_packets;   /* packets the stamper stamped */
    uint64_t output_errors;    /* packets the stamper could not stamp (dropped) */
    uint64_t accepted;
    uint64_t dropped;
    uint64_t modified;         /* verdicts carrying a rewritten packet */
    uint64_t strip_errors;     /* passing packets we could not strip */
    uint64_t truncated;        /* packets longer than the copy range */
    uint64_t gso_packets;      /* NFQA_SKB_INFO says GSO */
    uint64_t clock_kernel;     /* checks timed with NFQA_TIMESTAMP */
    uint64_t clock_local;      /* checks timed with the local clock */
    uint64_t recv_calls;
    uint64_t datagrams;
    uint64_t verdict_messages;
    uint64_t send_calls;
    uint64_t enobufs;          /* receive overruns reported by the kernel */
    uint64_t send_errors;      /* failed sendto calls (every retry counts) */
    uint64_t kernel_errors;    /* NLMSG_ERROR answers to our verdicts */
    uint64_t parse_errors;     /* packet messages we could not parse (with or without id) */
    uint64_t history_recorded; /* error records written (sampled) */
    uint64_t history_skipped;  /* errors not recorded: over the per-minute budget */
    uint64_t too_big;          /* rewritten packets too big for a verdict (dropped) */
    uint64_t verdict_failures; /* 1: verdicts could not be sent, the loop failed closed */
    uint64_t lost_ids;         /* packet messages without a readable id, cut datagrams */
    uint64_t gap_drops;        /* ids dropped one by one after a lost id */
    uint64_t batching_off;     /* 1: a gap too wide to answer, per-id verdicts only */
};

struct nfq_stats {
    struct nfq_counters counters;
    uint64_t window_ms;
    uint64_t published_ms;     /* wall clock of this snapshot */
    uint32_t last_clock;       /* enum nfq_clock of the latest check */
    uint32_t running;
    uint32_t history_len;      /* valid entries in history, oldest first */
    uint32_t reserved;
    struct nfq_error_record history[NFQ_HISTORY_SLOTS];
};

struct nfq_loop;

/* Allocates the loop and its buffers; NULL (errno set) on failure. */
struct nfq_loop *nfq_loop_new(const struct nfq_config *config);
/* Socket, options, bind + configure the queue; 0 or -errno. */
int nfq_loop_open(struct nfq_loop *loop);
/* Runs until nfq_loop_stop(); 0, or -errno on a fatal socket error.  Every
 * packet received gets exactly one verdict before this returns -- except
 * when verdicts cannot be sent (after retries): then it returns that error
 * and the packets still owed are dropped by the kernel when
 * nfq_loop_close() unbinds the queue (fail closed). */
int nfq_loop_run(struct nfq_loop *loop);
/* Asks the loop to end (any thread); it notices within idle_timeout_ms. */
void nfq_loop_stop(struct nfq_loop *loop);
/* New window for the next packets (any thread). */
void nfq_loop_set_window(struct nfq_loop *loop, uint64_t window_ms);
/* Consistent copy of the published counters (any thread). */
void nfq_loop_read_stats(struct nfq_loop *loop, struct nfq_stats *out);
/* Unbinds the queue and closes the socket; 0 or -errno. */
int nfq_loop_close(struct nfq_loop *loop);
void nfq_loop_free(struct nfq_loop *loop);

/* Sans-io rule of the error history (DECISIONS.md §3, "at most N a
 * minute" as a sliding window): 1 when a record made at now_ms keeps at
 * most per_minute records in every 60 s, given the history w (time order,
 * per_minute <= NFQ_HISTORY_SLOTS): fewer than per_minute records, or the
 * per_minute-th newest one at least 60 000 ms before now_ms. */
int nfq_history_budget_left(const struct nfq_stats *w, uint32_t per_minute, uint64_t now_ms);

/* cffi:end */

#endif
