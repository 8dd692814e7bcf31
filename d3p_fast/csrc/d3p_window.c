/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * d3p_window.c - exported IP-D3P window functions (DECISIONS.md §3).
 *
 * The logic lives in the static inline helpers of d3p_window.h so that C
 * callers (the NFQUEUE enforcer) and Python callers (through cffi) run the same
 * code.  Only the batch loop is written here: it is shaped for throughput.
 */
#include "d3p_window.h"

int d3p_verdict(uint64_t timestamp_ms, uint64_t now_ms, uint64_t window_ms)
{
	return d3p_verdict_inline(timestamp_ms, now_ms, window_ms);
}

int d3p_check_packet(const uint8_t *buf, size_t len, size_t offset, uint64_t now_ms,
		     uint64_t window_ms, uint64_t *timestamp_out)
{
	return d3p_check_packet_inline(buf, len, offset, now_ms, window_ms, timestamp_out);
}

/*
 * Branch-free form of d3p_verdict_inline() for the batch loop: with random
 * timestamps the branchy form mispredicts, and without branches the compiler
 * can keep the counters in registers.  Returns 0 (fresh), 1 (too old) or
 * 2 (too new), the values of enum d3p_verdict.
 */
static inline unsigned d3p_verdict_branchless(uint64_t timestamp_ms, uint64_t now_ms,
					      uint64_t window_ms)
{
	unsigned future = timestamp_ms > now_ms;
	uint64_t distance = future ? timestamp_ms - now_ms : now_ms - timestamp_ms;
	unsigned outside = distance > window_ms;

	return outside + (outside & future);
}

void d3p_check_batch(const uint64_t *timestamps, size_t n, uint64_t now_ms,
		     uint64_t window_ms, uint64_t counts[4], uint8_t *verdicts)
{
	/* Only the two failure causes are counted in the loop; fresh is what is
	 * left, so the loop carries two accumulators instead of three. */
	uint64_t too_old = 0, too_new = 0;
	size_t i;

	if (timestamps == NULL || counts == NULL)
		return;
	if (verdicts != NULL) {
		for (i = 0; i < n; i++) {
			unsigned v = d3p_verdict_branchless(timestamps[i], now_ms, window_ms);

			verdicts[i] = (uint8_t)v;
			too_old += v == D3P_TOO_OLD;
			too_new += v == D3P_TOO_NEW;
		}
	} else {
		for (i = 0; i < n; i++) {
			unsigned v = d3p_verdict_branchless(timestamps[i], now_ms, window_ms);

			too_old += v == D3P_TOO_OLD;
			too_new += v == D3P_TOO_NEW;
		}
	}
	counts[D3P_FRESH] += n - too_old - too_new;
	counts[D3P_TOO_OLD] += too_old;
	counts[D3P_TOO_NEW] += too_new;
}

void d3p_noop(void)
{
}
