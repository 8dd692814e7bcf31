/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * d3p_blast.c - the benchmark's sender: COUNT fresh D3P-over-IP packets
 * (DECISIONS.md §3: 12-octet header, POSIX-TIME-MSEC) carrying a small UDP
 * datagram, as fast as sendmmsg() goes.  C so that the sender, not Python,
 * is never what limits the measurement.
 *
 *   d3p_blast DST_IPV4 COUNT PROTO   prints {"sent": N, "failed": N, "elapsed": S}
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define PAYLOAD 16

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s DST_IPV4 COUNT PROTO\n", argv[0]);
        return 2;
    }
    long count = atol(argv[2]);
    int fd = socket(AF_INET, SOCK_RAW, atoi(argv[3]));
    struct sockaddr_in dst = {.sin_family = AF_INET};
    if (fd < 0 || inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
        perror("socket");
        return 1;
    }
    uint8_t pkt[12 + 8 + PAYLOAD] = {0};
    pkt[0] = 17;   /* Next Header: UDP */
    pkt[1] = 3;    /* Header Length: 3 words */
    pkt[2] = 1;    /* POSIX-TIME-MSEC */
    uint8_t *udp = pkt + 12;
    udp[0] = 0x0f; udp[1] = 0xa0;  /* 4000 */
    udp[2] = 0x13; udp[3] = 0x88;  /* 5000 */
    udp[5] = 8 + PAYLOAD;          /* checksum 0: none (RFC 768) */
    struct iovec iov = {.iov_base = pkt, .iov_len = sizeof(pkt)};
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < BATCH; i++) {
        msgs[i].msg_hdr.msg_iov = &iov;
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    long sent = 0, failed = 0;
    double t0 = now_s();
    while (sent + failed < count) {
        uint64_t ts = wall_ms();
        for (int i = 0; i < 8; i++)
            pkt[4 + i] = (uint8_t)(ts >> (56 - 8 * i));
        int want = count - sent - failed < BATCH ? (int)(count - sent - failed) : BATCH;
        int n = sendmmsg(fd, msgs, want, 0);
        if (n < 0) {
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                perror("sendmmsg");
                return 1;
            }
            failed++;
            continue;
        }
        sent += n;
    }
    printf("{\"sent\": %ld, \"failed\": %ld, \"elapsed\": %.6f}\n", sent, failed, now_s() - t0);
    return 0;
}
