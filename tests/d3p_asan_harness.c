/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * AddressSanitizer harness for d3p_fast/csrc/d3p_window.c (tests/test_d3p_asan.py).
 *
 * Every buffer handed to the parser is malloc'd at exactly its length, so one
 * octet read past the end lands in an ASan red zone and aborts the run.
 *
 *   harness replay   read cases from stdin, print one result line per case
 *   harness fuzz SEED ROUNDS
 *                    random buffers (mostly near-valid headers); checks the
 *                    results against the window rule itself
 *   harness canary   read one octet past a buffer: proves ASan is active
 *
 * replay input, all integers little-endian:
 *   'P' u32 len, u64 offset, u64 now, u64 window, len octets
 *       -> "P <verdict> <timestamp or 0>"
 *   'B' u32 n, u64 now, u64 window, n * u64 timestamps
 *       -> "B <fresh> <too_old> <too_new> <malformed> <verdict digits>"
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "d3p_window.h"

static int read_exact(void *dst, size_t n)
{
	return fread(dst, 1, n, stdin) == n;
}

static int read_u32(uint32_t *v)
{
	uint8_t b[4];

	if (!read_exact(b, 4))
		return 0;
	*v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	return 1;
}

static int read_u64(uint64_t *v)
{
	uint8_t b[8];
	int i;

	if (!read_exact(b, 8))
		return 0;
	*v = 0;
	for (i = 7; i >= 0; i--)
		*v = *v << 8 | b[i];
	return 1;
}

static void *exact_alloc(size_t n)
{
	/* malloc(0) returns a unique pointer with no usable octet: ideal here. */
	void *p = malloc(n);

	if (p == NULL && n != 0) {
		perror("malloc");
		exit(2);
	}
	return p;
}

static int replay_packet(void)
{
	uint32_t len;
	uint64_t offset, now, window, timestamp = 0;
	uint8_t *buf;
	int verdict;

	if (!read_u32(&len) || !read_u64(&offset) || !read_u64(&now) || !read_u64(&window))
		return 0;
	buf = exact_alloc(len);
	if (!read_exact(buf, len))
		return 0;
	/* size_t is 64 bits on the platforms the test runs on. */
	verdict = d3p_check_packet(buf, len, (size_t)offset, now, window, &timestamp);
	if (d3p_check_packet(buf, len, (size_t)offset, now, window, NULL) != verdict) {
		fprintf(stderr, "timestamp_out changed the verdict\n");
		exit(3);
	}
	printf("P %d %llu\n", verdict,
	       verdict == D3P_MALFORMED ? 0ULL : (unsigned long long)timestamp);
	free(buf);
	return 1;
}

static int replay_batch(void)
{
	uint32_t n, i;
	uint64_t now, window, counts[4] = { 0, 0, 0, 0 };
	uint64_t *timestamps;
	uint8_t *verdicts;

	if (!read_u32(&n) || !read_u64(&now) || !read_u64(&window))
		return 0;
	timestamps = exact_alloc((size_t)n * sizeof(*timestamps));
	verdicts = exact_alloc(n);
	for (i = 0; i < n; i++)
		if (!read_u64(&timestamps[i]))
			return 0;
	d3p_check_batch(timestamps, n, now, window, counts, verdicts);
	printf("B %llu %llu %llu %llu ", (unsigned long long)counts[0],
	       (unsigned long long)counts[1], (unsigned long long)counts[2],
	       (unsigned long long)counts[3]);
	for (i = 0; i < n; i++)
		putchar('0' + verdicts[i]);
	putchar('\n');
	free(timestamps);
	free(verdicts);
	return 1;
}

static int replay(void)
{
	int kind;

	while ((kind = getchar()) != EOF) {
		if (kind == 'P' && replay_packet())
			continue;
		if (kind == 'B' && replay_batch())
			continue;
		fprintf(stderr, "bad replay input\n");
		return 2;
	}
	return 0;
}

/* xorshift64*: deterministic, seedable, no global state. */
static uint64_t next_random(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545F4914F6CDD1DULL;
}

static int expect(int ok, const char *what, unsigned long round)
{
	if (!ok)
		fprintf(stderr, "round %lu: %s\n", round, what);
	return ok;
}

static int fuzz(uint64_t seed, unsigned long rounds)
{
	uint64_t state = seed | 1;
	unsigned long round;

	for (round = 0; round < rounds; round++) {
		size_t len = next_random(&state) % 64, i;
		size_t offset = next_random(&state) % (len + 16);
		uint64_t now = next_random(&state), window = next_random(&state) >> (next_random(&state) % 64);
		uint64_t timestamp = 0, counts[4] = { 0, 0, 0, 0 };
		uint8_t *buf = exact_alloc(len);
		uint8_t *verdicts;
		int verdict;

		for (i = 0; i < len; i++)
			buf[i] = (uint8_t)next_random(&state);
		if (offset + 3 <= len && next_random(&state) % 4 != 0) {
			/* Mostly a near-valid header: small Header Length, type 1. */
			buf[offset + 1] = (uint8_t)(next_random(&state) % 6);
			buf[offset + 2] = D3P_TIMESTAMP_POSIX_TIME_MSEC;
		}
		verdict = d3p_check_packet(buf, len, offset, now, window, &timestamp);
		if (!expect(verdict >= D3P_FRESH && verdict <= D3P_MALFORMED, "verdict range", round))
			return 1;
		if (verdict != D3P_MALFORMED &&
		    !expect(verdict == d3p_verdict(timestamp, now, window) &&
				    timestamp == d3p_load_be64(buf + offset + 4),
			    "verdict does not follow the timestamp", round))
			return 1;
		free(buf);

		/* A batch over an exact-size array, verdicts included. */
		len = next_random(&state) % 40;
		{
			uint64_t *values = exact_alloc(len * sizeof(*values));

			verdicts = exact_alloc(len);
			for (i = 0; i < len; i++)
				values[i] = i % 2 ? now + (next_random(&state) % 9) - 4 : next_random(&state);
			d3p_check_batch(values, len, now, window, counts, verdicts);
			for (i = 0; i < len; i++)
				if (!expect(verdicts[i] == d3p_verdict(values[i], now, window),
					    "batch verdict differs from d3p_verdict", round))
					return 1;
			if (!expect(counts[0] + counts[1] + counts[2] == len && counts[3] == 0,
				    "batch counts", round))
				return 1;
			d3p_check_batch(values, len, now, window, counts, NULL);
			if (!expect(counts[0] + counts[1] + counts[2] == 2 * len, "counts add up", round))
				return 1;
			free(values);
			free(verdicts);
		}
	}
	/* Degenerate inputs the contract names: NULL buffer, offset past the end. */
	if (!expect(d3p_check_packet(NULL, 0, 0, 0, 0, NULL) == D3P_MALFORMED, "NULL buffer", rounds))
		return 1;
	if (!expect(d3p_check_packet((const uint8_t *)"", 0, SIZE_MAX, 0, 0, NULL) == D3P_MALFORMED,
		    "offset SIZE_MAX", rounds))
		return 1;
	d3p_noop();
	return 0;
}

static int canary(void)
{
	volatile uint8_t *buf = exact_alloc(12);
	int past_end = buf[12]; /* deliberate one-octet overread */

	free((void *)buf);
	(void)past_end;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "replay") == 0)
		return replay();
	if (argc == 4 && strcmp(argv[1], "fuzz") == 0)
		return fuzz(strtoull(argv[2], NULL, 0), strtoul(argv[3], NULL, 0));
	if (argc == 2 && strcmp(argv[1], "canary") == 0)
		return canary();
	fprintf(stderr, "usage: %s replay | fuzz SEED ROUNDS | canary\n", argv[0]);
	return 2;
}
