/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * d3p_window.c - exported IP-D3P window functions (DECISIONS.md §3).
 *
 * The per-packet logic lives in the static inline helpers of d3p_window.h so
 * that C callers (the NFQUEUE enforcer) and Python callers (through cffi) run
 * the same code.  Only the batch loop is written here: it is shaped for
 * throughput (bench/bench_d3p_window.py).
 */
#include <string.h>

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
 * The batch loop uses the window rule in its interval form: T is fresh iff
 * now - W <= T <= now + W (mathematical integers).  Clamping both ends to the
 * 64-bit range changes no answer, since every T lies in [0, UINT64_MAX]:
 *   too old  iff  T < lo,  lo = max(now - W, 0)
 *   too new  iff  T > hi,  hi = min(now + W, UINT64_MAX)
 * and lo <= now <= hi, so no T is both.  Two compares per timestamp and no
 * branch, which the compiler turns into vector compares.
 */
static inline void d3p_fresh_interval(uint64_t now_ms, uint64_t window_ms, uint64_t *lo,
				      uint64_t *hi)
{
	*lo = now_ms >= window_ms ? now_ms - window_ms : 0;
	*hi = UINT64_MAX - now_ms >= window_ms ? now_ms + window_ms : UINT64_MAX;
}

/* Scalar loop: the tail of the vector loop, and the whole job elsewhere. */
static void d3p_batch_scalar(const uint64_t *timestamps, size_t n, uint64_t lo, uint64_t hi,
			     uint64_t *too_old, uint64_t *too_new, uint8_t *verdicts)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned is_old = timestamps[i] < lo, is_new = timestamps[i] > hi;

		*too_old += is_old;
		*too_new += is_new;
		if (verdicts != NULL)
			verdicts[i] = (uint8_t)(is_old * D3P_TOO_OLD + is_new * D3P_TOO_NEW);
	}
}

#if (defined(__GNUC__) || defined(__clang__)) && !defined(D3P_SCALAR_ONLY)
/*
 * Four timestamps per step with GCC/clang vector extensions: the loop is one
 * pass over memory, so it runs at memory bandwidth once the compares are SIMD.
 * On x86-64 the function is also built for AVX2 (64-bit vector compares) and
 * the dynamic loader picks the clone the CPU supports (glibc ifunc); the
 * "default" clone is the baseline the extension is compiled for.
 * tests/test_d3p_asan.py builds every variant: the clones, the baseline alone
 * (-DD3P_CPU_CLONES=) and the scalar loop alone (-DD3P_SCALAR_ONLY).
 */
typedef uint64_t d3p_u64x4 __attribute__((vector_size(32)));

#ifndef D3P_CPU_CLONES
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define D3P_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#endif
#ifndef D3P_CPU_CLONES
#define D3P_CPU_CLONES
#endif

D3P_CPU_CLONES
static size_t d3p_batch_vector(const uint64_t *timestamps, size_t n, uint64_t lo, uint64_t hi,
			       uint64_t *too_old, uint64_t *too_new, uint8_t *verdicts)
{
	const d3p_u64x4 lo4 = { lo, lo, lo, lo }, hi4 = { hi, hi, hi, hi };
	/* A true vector compare is all ones (-1): subtracting it counts one. */
	d3p_u64x4 old_a = { 0 }, new_a = { 0 }, old_b = { 0 }, new_b = { 0 };
	size_t i = 0;
	int k;

	if (verdicts == NULL) {
		/* Two independent accumulator pairs keep both compare units busy. */
		for (; i + 8 <= n; i += 8) {
			d3p_u64x4 a, b;

			/* memcpy: no alignment assumed beyond that of uint64_t */
			memcpy(&a, timestamps + i, sizeof(a));
			memcpy(&b, timestamps + i + 4, sizeof(b));

			old_a -= (d3p_u64x4)(a < lo4);
			new_a -= (d3p_u64x4)(a > hi4);
			old_b -= (d3p_u64x4)(b < lo4);
			new_b -= (d3p_u64x4)(b > hi4);
		}
	} else {
		for (; i + 4 <= n; i += 4) {
			d3p_u64x4 a, is_old, is_new, verdict;

			memcpy(&a, timestamps + i, sizeof(a));
			is_old = -(d3p_u64x4)(a < lo4);
			is_new = -(d3p_u64x4)(a > hi4);
			verdict = is_old * D3P_TOO_OLD + is_new * D3P_TOO_NEW;
			old_a += is_old;
			new_a += is_new;
			for (k = 0; k < 4; k++)
				verdicts[i + k] = (uint8_t)verdict[k];
		}
	}
	old_a += old_b;
	new_a += new_b;
	for (k = 0; k < 4; k++) {
		*too_old += old_a[k];
		*too_new += new_a[k];
	}
	return i;
}
#else
static size_t d3p_batch_vector(const uint64_t *timestamps, size_t n, uint64_t lo, uint64_t hi,
			       uint64_t *too_old, uint64_t *too_new, uint8_t *verdicts)
{
	/* No vector extensions: the scalar loop does everything. */
	(void)timestamps, (void)n, (void)lo, (void)hi, (void)too_old, (void)too_new,
		(void)verdicts;
	return 0;
}
#endif

void d3p_check_batch(const uint64_t *timestamps, size_t n, uint64_t now_ms,
		     uint64_t window_ms, uint64_t counts[4], uint8_t *verdicts)
{
	/* Only the two failure causes are counted; fresh is what is left. */
	uint64_t lo, hi, too_old = 0, too_new = 0;
	size_t done;

	if (timestamps == NULL || counts == NULL)
		return;
	d3p_fresh_interval(now_ms, window_ms, &lo, &hi);
	done = d3p_batch_vector(timestamps, n, lo, hi, &too_old, &too_new, verdicts);
	d3p_batch_scalar(timestamps + done, n - done, lo, hi, &too_old, &too_new,
			 verdicts != NULL ? verdicts + done : NULL);
	counts[D3P_FRESH] += n - too_old - too_new;
	counts[D3P_TOO_OLD] += too_old;
	counts[D3P_TOO_NEW] += too_new;
}

void d3p_noop(void)
{
}

int d3p_noop_check_packet(const uint8_t *buf, size_t len, size_t offset, uint64_t now_ms,
			  uint64_t window_ms, uint64_t *timestamp_out)
{
	(void)buf, (void)len, (void)offset, (void)now_ms, (void)window_ms, (void)timestamp_out;
	return D3P_FRESH;
}
