/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * d3p_window.h - the IP-D3P freshness check, sans-io.
 *
 * Wire format and window rule: DECISIONS.md §3 (project decision; the text of
 * draft-weis-delay-detection could not be read).  The IP-D3P header is 12 octets,
 * all fields big-endian:
 *
 *    0      Next Header     IP protocol number of what follows (4, 41, 17, ...)
 *    1      Header Length   length of this header in 4-octet units (3 minimum)
 *    2      Timestamp Type  1 = POSIX-TIME-MSEC (ms since 1970-01-01 UTC)
 *    3      Reserved        0 on send, ignored on receive
 *    4..11  Timestamp       unsigned 64-bit
 *
 * A Header Length above 3 declares extra 4-octet words after the timestamp
 * (room for later versions of the draft).  They are skipped, not parsed: the
 * header is malformed only when the declared length runs past the buffer.
 *
 * Window rule, T = packet timestamp, N = receiver time, W = window (all ms):
 * delta = N - T computed as a mathematical (unbounded) integer;
 *   fresh   when -W <= delta <= W   (both edges inclusive)
 *   too old when delta >  W
 *   too new when delta < -W
 * No 64-bit value of T, N or W can overflow: the code compares the unsigned
 * distance |N - T| with W and never forms a signed difference.
 *
 * Everything here is a pure function of its arguments: no globals, no
 * allocation, no I/O.  The text between the cffi markers is also the cdef
 * d3p_fast/_build.py hands to cffi, so it must stay cffi-parsable.
 */
#ifndef D3P_WINDOW_H
#define D3P_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* cffi:begin */
/* Bumped whenever a declaration below changes meaning; d3p_fast/__init__.py
 * refuses a compiled module whose value differs from the one it expects. */
#define D3P_FAST_ABI 1

/* Wire constants of DECISIONS.md §3; the same numbers as scapy_gdoi/_consts.py
 * (D3P_HEADER_LEN, D3P_MIN_HEADER_LEN_UNITS, D3P_TS_POSIX_TIME_MSEC), which
 * tests/test_d3p_window.py checks. */
#define D3P_HEADER_OCTETS 12
#define D3P_MIN_HEADER_WORDS 3
#define D3P_TIMESTAMP_POSIX_TIME_MSEC 1

enum d3p_verdict { D3P_FRESH = 0, D3P_TOO_OLD = 1, D3P_TOO_NEW = 2, D3P_MALFORMED = 3 };

/* Window verdict for one timestamp (D3P_FRESH, D3P_TOO_OLD or D3P_TOO_NEW). */
int d3p_verdict(uint64_t timestamp_ms, uint64_t now_ms, uint64_t window_ms);

/* Parse the 12-octet D3P header at buf[offset]; on success store the timestamp
 * in *timestamp_out (may be NULL) and return the window verdict; D3P_MALFORMED
 * when truncated, Header Length < 3, unknown Timestamp Type, or offset > len.
 * A Header Length > 3 is accepted when all its 4-octet words fit in the buffer.
 * *timestamp_out is left untouched on D3P_MALFORMED. */
int d3p_check_packet(const uint8_t *buf, size_t len, size_t offset, uint64_t now_ms,
                     uint64_t window_ms, uint64_t *timestamp_out);

/* Window verdicts for n native-endian timestamps.  counts[4] are ADDED to
 * (caller zeroes them), indexed by enum d3p_verdict; verdicts may be NULL,
 * otherwise it receives n verdict octets. */
void d3p_check_batch(const uint64_t *timestamps, size_t n, uint64_t now_ms,
                     uint64_t window_ms, uint64_t counts[4], uint8_t *verdicts);

/* Does nothing: the benchmark's baseline for the cost of one cffi call. */
void d3p_noop(void);

/* Same arguments as d3p_check_packet(), reads none of them, returns D3P_FRESH:
 * the benchmark's floor for a cffi call that converts those six arguments. */
int d3p_noop_check_packet(const uint8_t *buf, size_t len, size_t offset, uint64_t now_ms,
                          uint64_t window_ms, uint64_t *timestamp_out);
/* cffi:end */

/*
 * Inline versions for C hot loops (the NFQUEUE enforcer).  They are the code the
 * exported functions run, so both paths give the same answers.  They sit
 * outside the cffi markers because cffi cannot parse function bodies.
 */

/* Unsigned distance between a and b: |a - b| without any overflow. */
static inline uint64_t d3p_distance_inline(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

static inline int d3p_verdict_inline(uint64_t timestamp_ms, uint64_t now_ms, uint64_t window_ms)
{
	/* |delta| <= W is fresh on both sides (inclusive edges, DECISIONS.md §3);
	 * otherwise the sign of delta = now - timestamp picks the cause. */
	if (d3p_distance_inline(now_ms, timestamp_ms) <= window_ms)
		return D3P_FRESH;
	return timestamp_ms > now_ms ? D3P_TOO_NEW : D3P_TOO_OLD;
}

/* Big-endian 64-bit load from any alignment. */
static inline uint64_t d3p_load_be64(const uint8_t *p)
{
	return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
	       ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
	       ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

/* Header parse + verdict; see d3p_check_packet() for the contract. */
static inline int d3p_check_packet_inline(const uint8_t *buf, size_t len, size_t offset,
					  uint64_t now_ms, uint64_t window_ms,
					  uint64_t *timestamp_out)
{
	const uint8_t *header;
	size_t available;
	uint64_t timestamp;

	if (buf == NULL || offset > len)
		return D3P_MALFORMED;
	available = len - offset; /* cannot wrap: offset <= len */
	if (available < D3P_HEADER_OCTETS)
		return D3P_MALFORMED;
	header = buf + offset;
	/* Header Length counts 4-octet words and includes the fixed 12 octets. */
	if (header[1] < D3P_MIN_HEADER_WORDS || (size_t)header[1] * 4 > available)
		return D3P_MALFORMED;
	if (header[2] != D3P_TIMESTAMP_POSIX_TIME_MSEC)
		return D3P_MALFORMED;
	timestamp = d3p_load_be64(header + 4);
	if (timestamp_out != NULL)
		*timestamp_out = timestamp;
	return d3p_verdict_inline(timestamp, now_ms, window_ms);
}

#endif /* D3P_WINDOW_H */
