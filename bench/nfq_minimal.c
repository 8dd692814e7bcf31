/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * nfq_minimal.c - the plain NFQUEUE consumer, as libnetfilter_queue's
 * examples/nf-queue.c and most user code are written: one recv() and one
 * NFQNL_MSG_VERDICT (accept) per packet, whole packet copied.  It is the
 * baseline of bench/bench_nfq.py, built from the same sans-io message code
 * (d3p_fast/csrc/nfq_msg.c) as our loop so only the loop structure differs.
 *
 *   nfq_minimal QUEUE IDLE_MS MAXLEN RCVBUF   prints READY once bound, then after IDLE_MS
 *   without packets (once some came) one JSON line: packets, first/last
 *   packet time, user and system CPU seconds since READY.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>

#include "nfq_msg.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double tv_s(struct timeval tv)
{
    return tv.tv_sec + tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s QUEUE IDLE_MS QUEUE_MAXLEN RCVBUF\n", argv[0]);
        return 2;
    }
    uint16_t queue = (uint16_t)atoi(argv[1]);
    int idle_ms = atoi(argv[2]);
    uint32_t maxlen = (uint32_t)atol(argv[3]);
    int rcvbuf = atoi(argv[4]), one = 1;
    static uint8_t buf[0xffff + 4096];
    uint8_t out[256];
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

    int fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (fd < 0 || bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
        perror("socket");
        return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
    size_t len = nfq_build_cfg_bind(out, sizeof(out), 1, queue, NFQNL_COPY_PACKET, 0xffff, maxlen,
                                    0, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO);
    if (sendto(fd, out, len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
        perror("bind queue");
        return 1;
    }
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    int error = 0;
    uint32_t seq = 0;
    if (n <= 0 || nfq_parse_error(buf, (size_t)n, &error, &seq) != NFQ_PARSE_OK || error) {
        fprintf(stderr, "bind queue: %s\n", strerror(-error));
        return 1;
    }
    struct timeval tv = {.tv_sec = idle_ms / 1000, .tv_usec = (idle_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct rusage start, end;
    getrusage(RUSAGE_SELF, &start);
    printf("READY\n");
    fflush(stdout);

    unsigned long packets = 0;
    double first = 0, last = 0;
    for (;;) {
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EAGAIN && packets)
                break;
            if (errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
                continue;
            perror("recv");
            return 1;
        }
        struct nfq_packet p;
        if (nfq_parse_packet(buf, (size_t)n, &p) != NFQ_PARSE_OK)
            continue;
        len = nfq_build_verdict(out, sizeof(out), queue, NFQ_VERDICT_ACCEPT, p.packet_id, NULL, 0);
        sendto(fd, out, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
        last = now_s();
        if (!packets++)
            first = last;
    }
    getrusage(RUSAGE_SELF, &end);
    printf("{\"packets\": %lu, \"first\": %.6f, \"last\": %.6f, \"user\": %.6f, \"system\": %.6f}\n",
           packets, first, last, tv_s(end.ru_utime) - tv_s(start.ru_utime),
           tv_s(end.ru_stime) - tv_s(start.ru_stime));
    return 0;
}
