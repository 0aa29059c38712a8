//go:build pjpeg && !noturbojpeg

// pjpeg: decoding one baseline JPEG on two cores.
//
// JPEG's entropy-coded data is one serial bit stream: a Huffman code's length is known only once
// the code before it is decoded, so libjpeg-turbo decodes it on one core, and for a large frame
// decoded at a reduced DCT scale that is nearly all of the time (4.5 of 5 ms for a 1920×1080
// frame on the project's machine). Huffman codes resynchronise, though: decoding that starts at
// an arbitrary bit soon falls into step with the true code boundaries. So:
//
//   - pj_main decodes MCUs from the start of the scan and pj_spec, at the same time, from the
//     middle, recording the bit position and DC predictors at each MCU it believes starts there.
//   - When pj_main reaches a bit position where pj_spec started an MCU, everything pj_spec decoded
//     from there on is the true decoding, except that its DC predictors started at zero instead
//     of the true values: the difference per component is added to every DC coefficient after
//     that point. pj_main stops there; if the halves never meet, pj_main decodes everything.
//   - Neither thread keeps coefficients: each dequantised coefficient goes straight into the
//     sums of the reduced-size inverse DCT, and each block ends as the IDCT's last fixed-point
//     sums, before their final descale. The DC term enters those sums linearly, so pj_spec's
//     missing DC offset is added there, exactly, when pj_output descales, range-limits and
//     converts colour. Each thread outputs its own MCU rows (pj_thread_a, pj_thread_b), and the
//     split point moves from frame to frame so that both finish together (pj_finish).
//
// The output is libjpeg-turbo's output, byte for byte (TestParallelMatchesLibjpegTurbo,
// FuzzParallelDecode): the same reduced-size inverse DCTs (the IJG 1x1, 2x2 and 4x4 algorithms
// with libjpeg's constants and rounding), chroma of 4:2:0 decoded at twice the luma DCT size as
// libjpeg-turbo does so that no upsampling is needed, and the same fixed-point YCbCr→RGB
// arithmetic. The one exception, frames whose coefficients leave the ranges 8-bit samples
// produce (only damaged or crafted ones), is described at pj_prepare. Anything outside that
// (progressive, arithmetic, restart intervals, 12-bit, CMYK, 4:2:2, 4:2:0 at 1/2 or 3/8, extra
// bytes after the scan, damaged data, headers libjpeg would warn about) is refused with
// PJ_UNSUPPORTED and goes to libjpeg-turbo, which also produces the error for bad data.
#include "pjpeg.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

// Where the compiler can, the hot functions get a second copy for newer x86-64 CPUs, picked at
// load time: BMI2's shifts by a register (shlx, shrx) for the bit reader, AVX2 for the
// per-pixel loops.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BITS_CLONES __attribute__((target_clones("bmi2", "default")))
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define BITS_CLONES
#define VECTOR_CLONES
#endif

#define FAST_BITS 10
#define SPAN_FINE 64
#define SPAN_CHUNK 16
#define EOB_RUN 100 // fastac's run for end-of-block: takes k past 63+15

typedef struct {
	uint16_t fast[1 << FAST_BITS];  // (length << 8) | symbol for codes of at most FAST_BITS bits
	int32_t fastac[1 << FAST_BITS]; // AC: value << 11 | run << 4 | code + extra bits, or 0 (see block)
	int32_t maxcode[18];            // largest code of each length, -1 when none
	int32_t valoff[17];             // symbol index = code + valoff[length]
	uint8_t vals[256];
	int present;
} huff;

// rec is an MCU start seen by pj_spec: its bit position in the unstuffed stream and the DC
// predictors before it.
typedef struct {
	uint64_t pos;
	uint32_t pred[3];
} rec;

// plan maps a block's coefficients (by zigzag index) to the sums of its inverse DCT: coefficient
// k adds v*w1[k] to sum i1[k] and (4x4 only) v*w2[k] to sum i2[k]; weights include the
// quantiser. Unused coefficients go to a spare sum (NSUMS(size)) with weight 0.
typedef struct {
	uint8_t i1[64], i2[64];
	int64_t w1[64], w2[64];
	int size;
	uint32_t lim[64]; // largest |coefficient| whose dequantised value fits 16 bits
} plan;

// span is what one thread saw of one component's values, to check that they stayed where
// libjpeg-turbo's SIMD inverse DCTs (16-bit lanes: dequantised coefficients wrap, pass-1
// outputs saturate at ±32767, final samples saturate to 0..255) agree with the C arithmetic
// reproduced here (no wrap, int results, a 10-bit wrapping range limit). Frames encoded from
// 8-bit samples stay far inside; in checked mode (see pj_prepare) others are refused
// (span_ok). For the thread that decodes from the middle, the DC-dependent values are off by
// its DC correction, which is why they are kept as ranges.
typedef struct {
	int32_t dc_lo, dc_hi;   // DC coefficients (16-bit, as libjpeg keeps them)
	int32_t ws0_lo, ws0_hi; // pass-1 outputs of column 0, which carry the DC
	int32_t ws_abs;         // largest |pass-1 output| of the other columns
	int64_t p_lo, p_hi;     // final sums (see finish1)
	int32_t ac_over;        // nonzero once an AC coefficient's dequantised value exceeded 16 bits
} span;

static void span_reset(span *r) {
	r->dc_lo = r->ws0_lo = INT32_MAX;
	r->dc_hi = r->ws0_hi = INT32_MIN;
	r->p_lo = INT64_MAX;
	r->p_hi = INT64_MIN;
	r->ws_abs = r->ac_over = 0;
}

static inline int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t max32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t abs32(int32_t a) { return a < 0 ? (int32_t)(-(uint32_t)a) : a; } // INT32_MIN stays "large"

static void span_merge(span *into, const span *r) {
	into->dc_lo = min32(into->dc_lo, r->dc_lo);
	into->dc_hi = max32(into->dc_hi, r->dc_hi);
	into->ws0_lo = min32(into->ws0_lo, r->ws0_lo);
	into->ws0_hi = max32(into->ws0_hi, r->ws0_hi);
	into->ws_abs |= r->ws_abs;
	into->p_lo = r->p_lo < into->p_lo ? r->p_lo : into->p_lo;
	into->p_hi = r->p_hi > into->p_hi ? r->p_hi : into->p_hi;
	into->ac_over |= r->ac_over;
}

// span_ok reports whether a component's values, with its DC coefficients moved by d (and so
// its column-0 pass-1 outputs by 4·d·q0 and its final sums by d·q0), stayed in the domain where
// libjpeg-turbo's SIMD and C inverse DCTs agree.
static int span_ok(const span *r, int32_t d, int32_t q0) {
	if (r->dc_lo > r->dc_hi) // no blocks
		return 1;
	if (r->ac_over || (uint32_t)r->ws_abs > 32767)
		return 0;
	int64_t lo = (int64_t)r->dc_lo + d, hi = (int64_t)r->dc_hi + d, dq = (int64_t)d * q0;
	if (lo < -32768 || hi > 32767 || (-lo > hi ? -lo : hi) * q0 > 32767)
		return 0;
	if (r->ws0_lo + 4 * dq < -32768 || r->ws0_hi + 4 * dq > 32767)
		return 0;
	return r->p_lo + dq >= -4100 && r->p_hi + dq <= 4091; // final samples in -512..511
}

// bitr reads the entropy-coded segment MSB first, removing stuffed zero bytes. pos counts the
// unstuffed bits loaded (real and zero fill); real counts only the bits that came from data.
// After a marker it feeds zeros, as libjpeg does.
typedef struct {
	const uint8_t *p, *end;
	uint64_t buf;
	int n;
	uint64_t pos, real;
	int marker;
} bitr;

static int64_t now_ns(void);

struct pj {
	// the frame
	int W, H, ncomp, hmax, vmax, mcusX, mcusY, total, scale;
	int ch[3], cv[3], cq[3], cdc[3], cac[3], csize[3];
	int nblk, bcomp[10], bx[10], by[10];
	int32_t q[4][64]; // natural order
	int qpresent[4];
	huff dc[4], ac[4];
	plan plans[3];
	const uint8_t *scan, *end;
	uint8_t *out;
	int outW, outH;
	int mw, mh, nsamp; // an MCU's output: mw×mh samples per component
	int boff[10];      // where each block's samples start within its MCU's
	// phase 1: each MCU's samples as the IDCT's sums before the final descale (see pj_output)
	uint16_t *pa, *pb;
	size_t pcap;
	rec *recs;
	size_t reccap;
	uint64_t bpos; // unstuffed bit position where pj_spec starts
	const uint8_t *bptr;
	_Atomic int32_t nrec;
	_Atomic int stop, b_done;
	_Atomic int a_state; // A_* below
	int b_end_ok, b_ok, sync_k, sync_j;
	uint32_t a_pred[3], dq[3]; // dq: pj_spec's DC correction, dequantised
	uint64_t b_end;            // bit position after pj_spec's last complete MCU
	uint64_t b_err;            // 1 + start of pj_spec's last failed MCU, 0 if none
	uint16_t *rows[2];         // pj_output's scratch rows, one per thread
	size_t rowcap;
	// value spans (see span): pj_main's, and pj_spec's per MCU for its first SPAN_FINE MCUs
	// (where it may still be out of step: those before the meeting point must not count) and
	// per SPAN_CHUNK MCUs after
	int checked;
	span asp[3];
	span *bsp;
	size_t bspcap;
	// where pj_spec starts, as a fraction of the scan, adapted frame by frame (pj_join)
	double split;
	int64_t a_ns, b_ns, a_wait; // busy time of each thread, pj_main's wait for pj_spec
	int64_t t_prep, b_late;     // when pj_prepare returned, how much later pj_thread_b started
};

// pj_main's outcome, published to pj_spec's thread.
enum { A_RUNNING, A_MET, A_ALONE, A_FAILED };

static const uint8_t zz[64] = {
	0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
	41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
	30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

// The IJG reduced-size inverse DCTs (libjpeg's jpeg_idct_1x1, 2x2 and 4x4), split in two: the
// plan accumulates pass 1's inputs while decoding, and finish1/2/4 write, per output sample,
// the pass-2 sum shifted right by its DC weight (17 bits for 2x2, 16 for 4x4, 0 for 1x1).
// pj_output's ((sum + dc correction + 4) >> 3) & 1023 is then exactly libjpeg's
// DESCALE(..) & RANGE_MASK: every final descale here is 3 bits past the DC weight. Only bits
// 3..12 of that sum matter, so the sums are kept modulo 2^16 (and the DC correction too: the
// DC coefficient and libjpeg's int casts wrap at multiples of 2^16).
#define CONST_BITS 13
#define PASS1_BITS 2
#define DESCALE(x, n) (((x) + ((int64_t)1 << ((n)-1))) >> (n))

static const int8_t col2[8] = {0, 1, -1, 2, -1, 3, -1, 4}; // columns 2x2 reads
static const int8_t col4[8] = {0, 1, 2, 3, -1, 4, 5, 6};   // columns 4x4 reads

#define NSUMS(size) ((size) == 1 ? 1 : (size) == 2 ? 10 : 28)

static void make_plan(plan *p, int size, const int32_t *q) {
	memset(p, 0, sizeof *p);
	memset(p->i1, NSUMS(size), sizeof p->i1);
	memset(p->i2, NSUMS(size), sizeof p->i2);
	p->size = size;
	for (int k = 0; k < 64; k++)
		p->lim[k] = q[zz[k]] ? 32767 / (uint32_t)q[zz[k]] : 32767;
	for (int k = 0; k < 64; k++) {
		int nat = zz[k], r = nat >> 3, c = nat & 7;
		int64_t qq = q[nat];
		if (size == 1) {
			if (nat == 0)
				p->i1[k] = 0, p->w1[k] = qq;
		} else if (size == 2) {
			static const int32_t odd[8] = {0, 29692, 0, -10426, 0, 6967, 0, -5906};
			int ci = col2[c];
			if (ci < 0)
				continue;
			if (r == 0)
				p->i1[k] = ci, p->w1[k] = qq << (CONST_BITS + 2);
			else if (r & 1)
				p->i1[k] = 5 + ci, p->w1[k] = qq * odd[r];
		} else {
			static const int32_t a[8] = {0, 8697, 0, -17799, 0, 11893, 0, -1730};
			static const int32_t b[8] = {0, 20995, 0, 7373, 0, -4926, 0, -4176};
			int ci = col4[c];
			if (ci < 0 || r == 4)
				continue;
			if (r == 0)
				p->i1[k] = ci, p->w1[k] = qq << (CONST_BITS + 1);
			else if (r == 2)
				p->i1[k] = 7 + ci, p->w1[k] = qq * 15137;
			else if (r == 6)
				p->i1[k] = 7 + ci, p->w1[k] = qq * -6270;
			else
				p->i1[k] = 14 + ci, p->w1[k] = qq * a[r], p->i2[k] = 21 + ci, p->w2[k] = qq * b[r];
		}
	}
}

static inline void finish1(const int64_t *acc, uint16_t *dst) { dst[0] = (uint16_t)acc[0]; }

static inline void track_p(span *sp, int64_t p) {
	sp->p_lo = p < sp->p_lo ? p : sp->p_lo;
	sp->p_hi = p > sp->p_hi ? p : sp->p_hi;
}

static inline __attribute__((always_inline)) void finish2(const int64_t *acc, uint16_t *dst, int stride, span *sp, const int chk) {
	int32_t ws[2][5];
	int32_t wabs = 0;
	for (int ci = 0; ci < 5; ci++) {
		ws[0][ci] = (int32_t)DESCALE(acc[ci] + acc[5 + ci], CONST_BITS - PASS1_BITS + 2);
		ws[1][ci] = (int32_t)DESCALE(acc[ci] - acc[5 + ci], CONST_BITS - PASS1_BITS + 2);
		if (chk && ci)
			wabs |= abs32(ws[0][ci]) | abs32(ws[1][ci]);
	}
	if (chk) {
		sp->ws_abs |= wabs;
		sp->ws0_lo = min32(sp->ws0_lo, min32(ws[0][0], ws[1][0]));
		sp->ws0_hi = max32(sp->ws0_hi, max32(ws[0][0], ws[1][0]));
	}
	for (int r = 0; r < 2; r++) {
		const int32_t *w = ws[r];
		int64_t t10 = (int64_t)w[0] * (1 << (CONST_BITS + 2));
		int64_t t0 = (int64_t)w[4] * -5906 + (int64_t)w[3] * 6967 + (int64_t)w[2] * -10426 + (int64_t)w[1] * 29692;
		int64_t p0 = (t10 + t0) >> 17, p1 = (t10 - t0) >> 17;
		if (chk) {
			track_p(sp, p0);
			track_p(sp, p1);
		}
		dst[r * stride] = (uint16_t)p0;
		dst[r * stride + 1] = (uint16_t)p1;
	}
}

static inline __attribute__((always_inline)) void finish4(const int64_t *acc, uint16_t *dst, int stride, span *sp, const int chk) {
	int32_t ws[4][7];
	int32_t wabs = 0;
	for (int ci = 0; ci < 7; ci++) {
		int64_t t10 = acc[ci] + acc[7 + ci], t12 = acc[ci] - acc[7 + ci];
		int64_t oa = acc[14 + ci], ob = acc[21 + ci];
		ws[0][ci] = (int32_t)DESCALE(t10 + ob, CONST_BITS - PASS1_BITS + 1);
		ws[3][ci] = (int32_t)DESCALE(t10 - ob, CONST_BITS - PASS1_BITS + 1);
		ws[1][ci] = (int32_t)DESCALE(t12 + oa, CONST_BITS - PASS1_BITS + 1);
		ws[2][ci] = (int32_t)DESCALE(t12 - oa, CONST_BITS - PASS1_BITS + 1);
		if (chk && ci)
			wabs |= abs32(ws[0][ci]) | abs32(ws[1][ci]) | abs32(ws[2][ci]) | abs32(ws[3][ci]);
	}
	if (chk) {
		sp->ws_abs |= wabs;
		sp->ws0_lo = min32(sp->ws0_lo, min32(min32(ws[0][0], ws[1][0]), min32(ws[2][0], ws[3][0])));
		sp->ws0_hi = max32(sp->ws0_hi, max32(max32(ws[0][0], ws[1][0]), max32(ws[2][0], ws[3][0])));
	}
	for (int r = 0; r < 4; r++) {
		const int32_t *w = ws[r]; // columns 0 1 2 3 5 6 7
		uint16_t *o = dst + r * stride;
		int64_t t0 = (int64_t)w[0] * (1 << (CONST_BITS + 1));
		int64_t t2 = (int64_t)w[2] * 15137 + (int64_t)w[5] * -6270;
		int64_t t10 = t0 + t2, t12 = t0 - t2;
		int64_t z1 = w[6], z2 = w[4], z3 = w[3], z4 = w[1];
		int64_t a = z1 * -1730 + z2 * 11893 + z3 * -17799 + z4 * 8697;
		int64_t b = z1 * -4176 + z2 * -4926 + z3 * 7373 + z4 * 20995;
		int64_t p0 = (t10 + b) >> 16, p3 = (t10 - b) >> 16, p1 = (t12 + a) >> 16, p2 = (t12 - a) >> 16;
		if (chk) {
			track_p(sp, p0);
			track_p(sp, p1);
			track_p(sp, p2);
			track_p(sp, p3);
		}
		o[0] = (uint16_t)p0;
		o[3] = (uint16_t)p3;
		o[1] = (uint16_t)p1;
		o[2] = (uint16_t)p2;
	}
}

pj *pj_new(void) {
	pj *d = calloc(1, sizeof(pj));
	if (d)
		d->split = 0.5;
	return d;
}

void pj_free(pj *d) {
	if (!d)
		return;
	free(d->pa);
	free(d->pb);
	free(d->recs);
	free(d->rows[0]);
	free(d->rows[1]);
	free(d->bsp);
	free(d);
}

// ---- headers ----

static int build_huff(huff *h, const uint8_t bits[17], const uint8_t *vals, int nvals, int isdc) {
	memset(h, 0, sizeof *h);
	memcpy(h->vals, vals, nvals);
	int32_t code = 0;
	int k = 0;
	for (int l = 1; l <= 16; l++) {
		h->valoff[l] = k - code;
		for (int i = 0; i < bits[l]; i++, k++, code++) {
			// libjpeg refuses a table whose codes overflow their length or use the all-ones code
			if (code >= (1 << l) - 1 || (isdc && vals[k] > 15))
				return -1;
			if (l <= FAST_BITS) {
				int sh = FAST_BITS - l;
				for (int j = 0; j < (1 << sh); j++)
					h->fast[(code << sh) | j] = (uint16_t)((l << 8) | vals[k]);
			}
		}
		h->maxcode[l] = bits[l] ? code - 1 : -1;
		code <<= 1;
	}
	h->maxcode[17] = 0x7fffffff;
	if (!isdc) {
		for (int pk = 0; pk < (1 << FAST_BITS); pk++) {
			unsigned f = h->fast[pk];
			if (!f)
				continue;
			int len = f >> 8, run = (f & 255) >> 4, s = f & 15;
			if (s == 0) { // EOB (a run past any block) or ZRL (15 zeros and a zero)
				h->fastac[pk] = (run == 15 ? 15 : EOB_RUN) << 4 | len;
				continue;
			}
			if (len + s > FAST_BITS)
				continue;
			int v = (pk >> (FAST_BITS - len - s)) & ((1 << s) - 1);
			if (v < (1 << (s - 1)))
				v -= (1 << s) - 1;
			h->fastac[pk] = v * 2048 + (run << 4) + len + s;
		}
	}
	h->present = 1;
	return 0;
}

static inline int u16(const uint8_t *p) { return p[0] << 8 | p[1]; }

static int parse(pj *d, const uint8_t *data, size_t len) {
	if (len < 4 || data[0] != 0xFF || data[1] != 0xD8)
		return PJ_UNSUPPORTED;
	size_t i = 2;
	int sof = 0, jfif = 0, adobe = -1;
	int ids[3] = {0};
	memset(d->qpresent, 0, sizeof d->qpresent);
	for (int t = 0; t < 4; t++)
		d->dc[t].present = d->ac[t].present = 0;
	for (;;) {
		if (i + 4 > len || data[i] != 0xFF)
			return PJ_UNSUPPORTED;
		while (i < len && data[i] == 0xFF)
			i++;
		if (i + 3 > len)
			return PJ_UNSUPPORTED;
		int m = data[i++];
		int seg = u16(data + i);
		if (seg < 2 || i + seg > len)
			return PJ_UNSUPPORTED;
		const uint8_t *s = data + i + 2, *se = data + i + seg;
		switch (m) {
		case 0xC0:
		case 0xC1:
			if (sof || se - s < 6 || s[0] != 8)
				return PJ_UNSUPPORTED;
			d->H = u16(s + 1);
			d->W = u16(s + 3);
			d->ncomp = s[5];
			if (d->W == 0 || d->H == 0 || (d->ncomp != 1 && d->ncomp != 3) || se - s != 6 + 3 * d->ncomp)
				return PJ_UNSUPPORTED;
			for (int c = 0; c < d->ncomp; c++) {
				ids[c] = s[6 + 3 * c];
				for (int e = 0; e < c; e++)
					if (ids[e] == ids[c]) // duplicate component ids
						return PJ_UNSUPPORTED;
				d->ch[c] = s[7 + 3 * c] >> 4;
				d->cv[c] = s[7 + 3 * c] & 15;
				d->cq[c] = s[8 + 3 * c];
				if (d->cq[c] > 3 || d->ch[c] < 1 || d->ch[c] > 4 || d->cv[c] < 1 || d->cv[c] > 4)
					return PJ_UNSUPPORTED;
			}
			sof = 1;
			break;
		case 0xC4:
			while (s < se) {
				int tc = *s >> 4, th = *s & 15;
				if (tc > 1 || th > 3 || se - s < 17)
					return PJ_UNSUPPORTED;
				uint8_t bits[17] = {0};
				int n = 0;
				for (int l = 1; l <= 16; l++)
					n += bits[l] = s[l];
				if (n > 256 || se - s < 17 + n)
					return PJ_UNSUPPORTED;
				if (build_huff(tc ? &d->ac[th] : &d->dc[th], bits, s + 17, n, !tc))
					return PJ_UNSUPPORTED;
				s += 17 + n;
			}
			break;
		case 0xDB:
			while (s < se) {
				int pq = *s >> 4, tq = *s & 15;
				if (pq > 1 || tq > 3 || se - s < 1 + 64 * (pq + 1))
					return PJ_UNSUPPORTED;
				for (int k = 0; k < 64; k++)
					d->q[tq][zz[k]] = pq ? u16(s + 1 + 2 * k) : s[1 + k];
				d->qpresent[tq] = 1;
				s += 1 + 64 * (pq + 1);
			}
			break;
		case 0xDD:
			if (se - s != 2 || u16(s) != 0) // restart intervals: libjpeg-turbo's job
				return PJ_UNSUPPORTED;
			break;
		case 0xE0: // as libjpeg reads APP0: JFIF only with 14 bytes, and warns of a major version not 1
			if (se - s >= 14 && !memcmp(s, "JFIF\0", 5)) {
				if (s[5] != 1)
					return PJ_UNSUPPORTED;
				jfif = 1;
			}
			break;
		case 0xEE:
			if (se - s >= 12 && !memcmp(s, "Adobe", 5))
				adobe = s[11];
			break;
		case 0xDA: {
			if (!sof || se - s < 1)
				return PJ_UNSUPPORTED;
			int ns = s[0];
			if (ns != d->ncomp || se - s != 1 + 2 * ns + 3) // libjpeg wants these lengths exactly
				return PJ_UNSUPPORTED;
			d->nblk = 0;
			int seen = 0;
			for (int k = 0; k < ns; k++) {
				int c = 0;
				while (c < d->ncomp && ids[c] != s[1 + 2 * k])
					c++;
				if (c == d->ncomp || seen & (1 << c))
					return PJ_UNSUPPORTED;
				seen |= 1 << c;
				d->cdc[c] = s[2 + 2 * k] >> 4;
				d->cac[c] = s[2 + 2 * k] & 15;
				if (d->cdc[c] > 3 || d->cac[c] > 3 || !d->dc[d->cdc[c]].present ||
				    !d->ac[d->cac[c]].present || !d->qpresent[d->cq[c]])
					return PJ_UNSUPPORTED;
				int bh = ns == 1 ? 1 : d->ch[c], bv = ns == 1 ? 1 : d->cv[c];
				for (int y = 0; y < bv; y++)
					for (int x = 0; x < bh; x++) {
						if (d->nblk == 10)
							return PJ_UNSUPPORTED;
						d->bcomp[d->nblk] = c;
						d->bx[d->nblk] = x;
						d->by[d->nblk] = y;
						d->nblk++;
					}
			}
			const uint8_t *t = s + 1 + 2 * ns;
			if (t[0] != 0 || t[1] != 63 || t[2] != 0) // spectral selection / successive approx.
				return PJ_UNSUPPORTED;
			// libjpeg's colour space for 3 components: JFIF means YCbCr, else Adobe's transform
			// (1: YCbCr, 0: RGB, others: a warning), else component ids 'R' 'G' 'B' mean RGB.
			if (d->ncomp == 3 && !jfif) {
				if (adobe >= 0 ? adobe != 1 : ids[0] == 'R' && ids[1] == 'G' && ids[2] == 'B')
					return PJ_UNSUPPORTED;
			}
			d->scan = se;
			d->end = data + len;
			return PJ_OK;
		}
		case 0xD8:
		case 0xD9:
			return PJ_UNSUPPORTED;
		default:
			if ((m & 0xF0) != 0xE0 && m != 0xFE) // besides APPn and COM: other SOFs, DAC, RSTn,
				return PJ_UNSUPPORTED;       // DNL, and markers libjpeg does not know
			break;
		}
		i += seg;
	}
}

static int grow(void **p, size_t *cap, size_t want, size_t elem) {
	if (*cap >= want)
		return 0;
	free(*p);
	*p = malloc(want * elem);
	*cap = *p ? want : 0;
	return *p ? 0 : -1;
}

int pj_prepare(pj *d, const uint8_t *data, size_t len, int scale, uint8_t *out, int outW, int outH, int checked) {
	d->checked = checked;
	if (scale != 1 && scale != 2 && scale != 4)
		return PJ_UNSUPPORTED;
	int r = parse(d, data, len);
	if (r != PJ_OK)
		return r;
	d->scale = scale;
	if (d->ncomp == 1) {
		d->hmax = d->vmax = d->ch[0] = d->cv[0] = 1;
		d->csize[0] = scale;
	} else {
		if (d->ch[1] != 1 || d->cv[1] != 1 || d->ch[2] != 1 || d->cv[2] != 1 || d->ch[0] != d->cv[0] ||
		    d->ch[0] > 2)
			return PJ_UNSUPPORTED; // 4:4:4 and 4:2:0 only
		d->hmax = d->vmax = d->ch[0];
		d->csize[0] = scale;
		d->csize[1] = d->csize[2] = scale * d->hmax; // libjpeg-turbo scales chroma up by the IDCT
		if (d->csize[1] > 4)
			return PJ_UNSUPPORTED;
	}
	d->mcusX = (d->W + 8 * d->hmax - 1) / (8 * d->hmax);
	d->mcusY = (d->H + 8 * d->vmax - 1) / (8 * d->vmax);
	d->total = d->mcusX * d->mcusY;
	d->outW = (d->W * scale + 7) / 8;
	d->outH = (d->H * scale + 7) / 8;
	if (d->outW != outW || d->outH != outH)
		return PJ_UNSUPPORTED;
	d->out = out;

	d->mw = d->hmax * scale;
	d->mh = d->vmax * scale;
	d->nsamp = d->ncomp * d->mw * d->mh;
	for (int i = 0; i < d->nblk; i++) {
		int c = d->bcomp[i];
		d->boff[i] = c * d->mw * d->mh + d->by[i] * d->csize[c] * d->mw + d->bx[i] * d->csize[c];
	}
	for (int c = 0; c < d->ncomp; c++)
		make_plan(&d->plans[c], d->csize[c], d->q[d->cq[c]]);
	size_t nscan = (size_t)(d->end - d->scan);
	size_t cap = ((size_t)d->total + 4096) * d->nsamp;
	if (d->pcap < cap) {
		free(d->pa);
		free(d->pb);
		d->pa = malloc(cap * 2);
		d->pb = malloc(cap * 2);
		d->pcap = d->pa && d->pb ? cap : 0;
		if (!d->pcap)
			return PJ_NOMEM;
	}
	if (grow((void **)&d->recs, &d->reccap, d->total + 4096, sizeof(rec)))
		return PJ_NOMEM;
	size_t nspans = 3 * (SPAN_FINE + (d->reccap + SPAN_CHUNK - 1) / SPAN_CHUNK);
	if (grow((void **)&d->bsp, &d->bspcap, nspans, sizeof(span)))
		return PJ_NOMEM;
	for (int c = 0; c < 3; c++)
		span_reset(&d->asp[c]);
	size_t rowlen = (size_t)3 * d->mcusX * d->mw;
	if (d->rowcap < rowlen) {
		free(d->rows[0]);
		free(d->rows[1]);
		d->rows[0] = malloc(rowlen * 2);
		d->rows[1] = malloc(rowlen * 2);
		d->rowcap = d->rows[0] && d->rows[1] ? rowlen : 0;
		if (!d->rowcap)
			return PJ_NOMEM;
	}

	// pj_spec starts at byte split×nscan of the scan (not inside a stuffed 0xFF 0x00 pair); its
	// unstuffed bit position discounts the stuffed bytes before it.
	size_t mid = (size_t)(d->split * (double)nscan), stuffed = 0;
	if (mid > 0 && d->scan[mid - 1] == 0xFF)
		mid++;
	for (const uint8_t *p = d->scan, *e = d->scan + mid; (p = memchr(p, 0xFF, e - p)) != NULL; p++)
		if (p + 1 < d->end && p[1] == 0)
			stuffed++, p++;
	d->bptr = d->scan + mid;
	d->bpos = (uint64_t)(mid - stuffed) * 8;
	atomic_store(&d->nrec, 0);
	atomic_store(&d->stop, 0);
	atomic_store(&d->b_done, 0);
	atomic_store(&d->a_state, A_RUNNING);
	d->b_end_ok = d->b_ok = 0;
	d->a_ns = d->b_ns = d->a_wait = d->b_late = 0;
	d->t_prep = now_ns();
	d->sync_k = d->sync_j = -1;
	d->b_err = 0;
	return PJ_OK;
}

// ---- entropy decoding ----

static inline void refill(bitr *b) {
	if (b->n > 56)
		return;
	if (!b->marker && b->end - b->p >= 8) {
		uint64_t w;
		memcpy(&w, b->p, 8);
		w = __builtin_bswap64(w);
		int take = (64 - b->n) >> 3;
		uint64_t m = take == 8 ? ~0ULL : ~(~0ULL >> (8 * take));
		uint64_t x = ~w; // 0xFF bytes become zero bytes
		if (!((x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL & m)) {
			b->buf |= (w & m) >> b->n;
			b->n += 8 * take;
			b->p += take;
			b->pos += 8 * take;
			b->real += 8 * take;
			return;
		}
	}
	while (b->n <= 56) {
		uint64_t c = 0;
		if (!b->marker && b->p < b->end) {
			c = b->p[0];
			if (c != 0xFF) {
				b->p++;
				b->real += 8;
			} else if (b->p + 1 < b->end && b->p[1] == 0) {
				b->p += 2;
				b->real += 8;
			} else {
				b->marker = 1;
				c = 0;
			}
		}
		b->buf |= c << (56 - b->n);
		b->n += 8;
		b->pos += 8;
	}
}

static inline uint64_t bitpos(const bitr *b) { return b->pos - (uint64_t)b->n; }

static inline void consume(bitr *b, int k) {
	b->buf <<= k;
	b->n -= k;
}

// hdecode returns the next symbol, or -1 for a code the table lacks. Needs 16 bits buffered.
static inline int hdecode(bitr *b, const huff *h) {
	unsigned f = h->fast[b->buf >> (64 - FAST_BITS)];
	if (f) {
		consume(b, f >> 8);
		return f & 255;
	}
	uint32_t c16 = (uint32_t)(b->buf >> 48);
	for (int l = FAST_BITS + 1; l <= 16; l++) {
		int32_t c = (int32_t)(c16 >> (16 - l));
		if (c <= h->maxcode[l]) {
			consume(b, l);
			return h->vals[c + h->valoff[l]];
		}
	}
	return -1;
}

static inline int extend(bitr *b, int s) {
	int v = (int)(b->buf >> (64 - s));
	consume(b, s);
	return v < (1 << (s - 1)) ? v - (1 << s) + 1 : v;
}

// block decodes one block and leaves its output samples at dst (row stride mw). A coefficient
// position past 63 (libjpeg keeps the last such value at 63; sums cannot) is refused. size is
// a constant in each caller, so each IDCT size gets its own copy.
static inline __attribute__((always_inline)) int block(bitr *b, const huff *dc, const huff *ac, uint32_t *pred,
                                                       const plan *pl, uint16_t *dst, int stride, const int size,
                                                       span *sp, const int chk) {
	int64_t acc[NSUMS(4) + 1];
	memset(acc, 0, (NSUMS(size) + 1) * sizeof acc[0]);
	if (b->n < 32)
		refill(b);
	int s = hdecode(b, dc);
	if (s < 0)
		return -1;
	if (s)
		*pred += (uint32_t)extend(b, s);
	int64_t v = (int16_t)*pred; // libjpeg keeps the DC coefficient as a 16-bit JCOEF
	acc[pl->i1[0]] += v * pl->w1[0];
	if (chk && size > 1) {
		sp->dc_lo = min32(sp->dc_lo, (int32_t)v);
		sp->dc_hi = max32(sp->dc_hi, (int32_t)v);
	}
	uint32_t over = 0;
	for (int k = 1; k < 64;) {
		if (b->n < 32)
			refill(b);
		int32_t fa = ac->fastac[b->buf >> (64 - FAST_BITS)];
		if (fa) {
			k += (fa >> 4) & 127;
			consume(b, fa & 15);
			v = fa >> 11;
		} else {
			int rs = hdecode(b, ac);
			if (rs < 0)
				return -1;
			int r = rs >> 4;
			s = rs & 15;
			if (!s) {
				if (r != 15)
					break;
				k += 16;
				continue;
			}
			k += r;
			v = extend(b, s);
		}
		if (k > 63) {
			if (k > 63 + 15) // end of block
				break;
			return -1;
		}
		if (size > 1) {
			if (chk)
				over |= (uint32_t)(v + pl->lim[k]) > 2 * pl->lim[k];
			acc[pl->i1[k]] += v * pl->w1[k];
			if (size == 4)
				acc[pl->i2[k]] += v * pl->w2[k];
		}
		k++;
	}
	if (size == 1) {
		finish1(acc, dst);
	} else {
		if (chk)
			sp->ac_over |= over;
		if (size == 2)
			finish2(acc, dst, stride, sp, chk);
		else
			finish4(acc, dst, stride, sp, chk);
	}
	return 0;
}

// mcu decodes one MCU into its samples at dst.
static inline __attribute__((always_inline)) int mcu(pj *d, bitr *b, uint32_t *pred, uint16_t *dst, span *sp,
                                                     const int chk) {
	for (int i = 0; i < d->nblk; i++) {
		int c = d->bcomp[i], r;
		const huff *dc = &d->dc[d->cdc[c]], *ac = &d->ac[d->cac[c]];
		const plan *pl = &d->plans[c];
		switch (pl->size) {
		case 1:
			r = block(b, dc, ac, &pred[c], pl, dst + d->boff[i], d->mw, 1, &sp[c], chk);
			break;
		case 2:
			r = block(b, dc, ac, &pred[c], pl, dst + d->boff[i], d->mw, 2, &sp[c], chk);
			break;
		default:
			r = block(b, dc, ac, &pred[c], pl, dst + d->boff[i], d->mw, 4, &sp[c], chk);
		}
		if (r)
			return -1;
	}
	return 0;
}

static void bitr_init(bitr *b, const uint8_t *p, const uint8_t *end, uint64_t pos) {
	memset(b, 0, sizeof *b);
	b->p = p;
	b->end = end;
	b->pos = b->real = pos;
}

// ends_cleanly reports whether a decoding that ended at bit position endpos used up the scan:
// only padding is left before the EOI marker. Anything else goes to libjpeg-turbo, which warns
// about extraneous data (an error under TJFLAG_STOPONWARNING).
static int ends_cleanly(bitr *b, uint64_t endpos) {
	refill(b);
	return b->marker && (endpos + 7) / 8 == b->real / 8 && b->p + 1 < b->end && b->p[1] == 0xD9;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static int64_t now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// await_spec waits, at most 1 ms, until pj_spec has recorded an MCU at or past pos or has
// finished. pj_spec starts on another thread a little after pj_main; were pj_main already past
// the middle by then, it would run ahead of every MCU pj_spec records and the halves would never
// meet. If the other thread is not running at all, pj_main goes on alone after the wait.
static void await_spec(pj *d, uint64_t pos) {
	int64_t deadline = 0;
	for (unsigned i = 0;; i++) {
		int32_t nb = atomic_load_explicit(&d->nrec, memory_order_acquire);
		if ((nb > 0 && d->recs[nb - 1].pos >= pos) || atomic_load_explicit(&d->b_done, memory_order_acquire))
			return;
		if ((i & 255) == 0) {
			int64_t t = now_ns();
			if (!deadline)
				deadline = t + 1000000;
			else if (t > deadline)
				return;
		}
		cpu_relax();
	}
}

BITS_CLONES void pj_main(pj *d) {
	bitr b;
	bitr_init(&b, d->scan, d->end, 0);
	uint32_t pred[3] = {0, 0, 0};
	int j = 0, waited = 0;
	for (int k = 0; k < d->total; k++) {
		uint64_t pos = bitpos(&b);
		if (pos >= d->bpos) {
			if (!waited) {
				int64_t w0 = now_ns();
				await_spec(d, pos);
				d->a_wait = now_ns() - w0;
				waited = 1;
			}
			int32_t nb = atomic_load_explicit(&d->nrec, memory_order_acquire);
			while (j < nb && d->recs[j].pos < pos)
				j++;
			if (j < nb && d->recs[j].pos == pos) {
				d->sync_k = k;
				d->sync_j = j;
				memcpy(d->a_pred, pred, sizeof pred);
				atomic_store_explicit(&d->a_state, A_MET, memory_order_release);
				return;
			}
		}
		if (d->checked ? mcu(d, &b, pred, d->pa + (size_t)k * d->nsamp, d->asp, 1)
		               : mcu(d, &b, pred, d->pa + (size_t)k * d->nsamp, d->asp, 0))
			goto bad;
		if (bitpos(&b) > b.real) // ran into the zero fill: the data ends early
			goto bad;
	}
	atomic_store(&d->stop, 1);
	atomic_store_explicit(&d->a_state, ends_cleanly(&b, bitpos(&b)) ? A_ALONE : A_FAILED, memory_order_release);
	return;
bad:
	atomic_store(&d->stop, 1);
	atomic_store_explicit(&d->a_state, A_FAILED, memory_order_release);
}

BITS_CLONES void pj_spec(pj *d) {
	bitr b;
	bitr_init(&b, d->bptr, d->end, d->bpos);
	uint32_t pred[3] = {0, 0, 0};
	int32_t n = 0;
	size_t nmax = d->pcap / d->nsamp;
	if (nmax > d->reccap)
		nmax = d->reccap;
	d->b_end = 0;
	while ((size_t)n < nmax) {
		if (!(n & 31) && atomic_load_explicit(&d->stop, memory_order_relaxed))
			break;
		rec *r = &d->recs[n];
		r->pos = bitpos(&b);
		memcpy(r->pred, pred, sizeof pred);
		span *sp = d->bsp;
		if (!d->checked) {
		} else if (n < SPAN_FINE) {
			sp = d->bsp + 3 * n;
			span_reset(&sp[0]), span_reset(&sp[1]), span_reset(&sp[2]);
		} else {
			sp = d->bsp + 3 * (SPAN_FINE + (n - SPAN_FINE) / SPAN_CHUNK);
			if ((n - SPAN_FINE) % SPAN_CHUNK == 0) // a new chunk
				span_reset(&sp[0]), span_reset(&sp[1]), span_reset(&sp[2]);
		}
		span saved[3]; // a chunk's spans before this MCU: a dropped MCU must not count
		int bad;
		if (d->checked) {
			memcpy(saved, sp, sizeof saved);
			bad = mcu(d, &b, pred, d->pb + (size_t)n * d->nsamp, sp, 1);
			if (bad || bitpos(&b) > b.real)
				memcpy(sp, saved, sizeof saved);
		} else {
			bad = mcu(d, &b, pred, d->pb + (size_t)n * d->nsamp, sp, 0);
		}
		if (bitpos(&b) > b.real)
			break;
		if (bad) { // not in step (yet): drop the MCU, move on a bit
			d->b_err = r->pos + 1;
			if (b.n < 32)
				refill(&b);
			consume(&b, 1);
			continue;
		}
		n++;
		d->b_end = bitpos(&b);
		atomic_store_explicit(&d->nrec, n, memory_order_release);
	}
	d->b_end_ok = ends_cleanly(&b, d->b_end);
	atomic_store_explicit(&d->b_done, 1, memory_order_release);
}

int pj_met(pj *d) { return d->sync_k; }

int pj_rows(pj *d) { return d->mcusY; }

// spans_ok checks pj_main's values and, if met, pj_spec's from the meeting point on.
static int spans_ok(pj *d, int met) {
	if (!d->checked)
		return 1;
	for (int c = 0; c < d->ncomp; c++) {
		if (d->plans[c].size == 1) // libjpeg-turbo's 1x1 inverse DCT is plain C
			continue;
		int32_t q0 = d->q[d->cq[c]][0];
		if (!span_ok(&d->asp[c], 0, q0))
			return 0;
		if (!met)
			continue;
		span b;
		span_reset(&b);
		int32_t n = atomic_load(&d->nrec);
		for (int32_t j = d->sync_j; j < n && j < SPAN_FINE; j++)
			span_merge(&b, &d->bsp[3 * j + c]);
		for (int32_t j = d->sync_j < SPAN_FINE ? SPAN_FINE : d->sync_j; j < n; j = (j - SPAN_FINE) / SPAN_CHUNK * SPAN_CHUNK + SPAN_FINE + SPAN_CHUNK)
			span_merge(&b, &d->bsp[3 * (SPAN_FINE + (j - SPAN_FINE) / SPAN_CHUNK) + c]);
		// pj_spec's DC coefficients are its own 16-bit values; the true ones are d more
		int32_t dd = (int16_t)(uint16_t)(d->a_pred[c] - d->recs[d->sync_j].pred[c]);
		if (!span_ok(&b, dd, q0))
			return 0;
	}
	return 1;
}

int pj_join(pj *d) {
	int st = atomic_load_explicit(&d->a_state, memory_order_acquire);
	if (st == A_ALONE)
		return spans_ok(d, 0) ? PJ_OK : PJ_UNSUPPORTED;
	if (st != A_MET)
		return PJ_UNSUPPORTED;
	int32_t n = atomic_load(&d->nrec);
	// pj_spec's MCUs from the meeting point on must be exactly the rest of the frame, decoded
	// without a failure (a failure there means the data is bad, and libjpeg-turbo says how).
	if (!d->b_end_ok || n - d->sync_j != d->total - d->sync_k || d->b_err > d->recs[d->sync_j].pos)
		return PJ_UNSUPPORTED;
	for (int c = 0; c < d->ncomp; c++)
		d->dq[c] = (d->a_pred[c] - d->recs[d->sync_j].pred[c]) * (uint32_t)d->q[d->cq[c]][0];
	if (!spans_ok(d, 1))
		return PJ_UNSUPPORTED;
	return PJ_OK;
}

// ---- output ----

// limit is libjpeg's post-IDCT range limit of a final sum (see finish1): bits 3..12 of sum + 4,
// read as a signed 10-bit sample around 0, plus 128, clamped to 0..255.
static inline int limit(uint16_t sum) {
	int v = ((int16_t)(uint16_t)((uint16_t)(sum + 4) << 3) >> 6) + 128;
	return v < 0 ? 0 : v > 255 ? 255 : v;
}

static inline int clamp8(int v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

// ycc converts n samples to packed RGB with libjpeg's fixed-point arithmetic (its Cr_r_tab,
// Cb_b_tab, Cr_g_tab and Cb_g_tab, computed inline so that the loop vectorises).
VECTOR_CLONES static void ycc(const uint16_t *restrict ys, const uint16_t *restrict cbs, const uint16_t *restrict crs,
                              int n, uint8_t *restrict o) {
	for (int x = 0; x < n; x++) {
		int y = limit(ys[x]), cb = limit(cbs[x]) - 128, cr = limit(crs[x]) - 128;
		o[3 * x] = (uint8_t)clamp8(y + ((91881 * cr + 32768) >> 16));
		o[3 * x + 1] = (uint8_t)clamp8(y + ((-22554 * cb - 46802 * cr + 32768) >> 16));
		o[3 * x + 2] = (uint8_t)clamp8(y + ((116130 * cb + 32768) >> 16));
	}
}

VECTOR_CLONES static void gray(const uint16_t *restrict ys, int n, uint8_t *restrict o) {
	for (int x = 0; x < n; x++)
		o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = (uint8_t)limit(ys[x]);
}

// pj_output writes MCU rows [r0, r1) into out, using scratch rows t (0 or 1: one per thread).
// Each output row's samples are first gathered from the MCUs (with pj_spec's DC correction,
// modulo 2^16 like the sums) into one row per component, then converted in one pass.
void pj_output(pj *d, int r0, int r1, int t) {
	int mw = d->mw, mh = d->mh, plane = mw * mh, rw = d->mcusX * mw;
	uint16_t *rows = d->rows[t];
	for (int my = r0; my < r1; my++) {
		for (int ly = 0; ly < mh; ly++) {
			int oy = my * mh + ly;
			if (oy >= d->outH)
				break;
			for (int mx = 0; mx < d->mcusX; mx++) {
				int k = my * d->mcusX + mx;
				const uint16_t *src;
				uint16_t dq[3] = {0, 0, 0};
				if (d->sync_k < 0 || k < d->sync_k) {
					src = d->pa + (size_t)k * d->nsamp;
				} else {
					src = d->pb + (size_t)(d->sync_j + (k - d->sync_k)) * d->nsamp;
					dq[0] = (uint16_t)d->dq[0], dq[1] = (uint16_t)d->dq[1], dq[2] = (uint16_t)d->dq[2];
				}
				src += ly * mw;
				for (int c = 0; c < d->ncomp; c++)
					for (int x = 0; x < mw; x++)
						rows[c * rw + mx * mw + x] = (uint16_t)(src[c * plane + x] + dq[c]);
			}
			uint8_t *o = d->out + (size_t)oy * d->outW * 3;
			if (d->ncomp == 1)
				gray(rows, d->outW, o);
			else
				ycc(rows, rows + rw, rows + 2 * rw, d->outW, o);
		}
	}
}

// ---- the two threads ----

void pj_thread_a(pj *d) {
	int64_t t0 = now_ns();
	pj_main(d);
	int st = atomic_load_explicit(&d->a_state, memory_order_relaxed);
	if (st == A_MET)
		pj_output(d, 0, d->sync_k / d->mcusX, 0); // the rows wholly before the meeting point
	else if (st == A_ALONE)
		pj_output(d, 0, d->mcusY, 0);
	d->a_ns = now_ns() - t0 - d->a_wait;
}

void pj_thread_b(pj *d) {
	int64_t t0 = now_ns();
	d->b_late = t0 - d->t_prep;
	pj_spec(d);
	int64_t t1 = now_ns();
	int st;
	for (unsigned i = 0; (st = atomic_load_explicit(&d->a_state, memory_order_acquire)) == A_RUNNING; i++) {
		if (i < (1u << 16))
			cpu_relax();
		else
			sched_yield();
	}
	int64_t t2 = now_ns();
	if (st == A_MET && pj_join(d) == PJ_OK) {
		d->b_ok = 1;
		pj_output(d, d->sync_k / d->mcusX, d->mcusY, 1);
	}
	d->b_ns = now_ns() - t0 - (t2 - t1);
}

int pj_finish(pj *d) {
	switch (atomic_load(&d->a_state)) {
	case A_ALONE:
		return spans_ok(d, 0) ? PJ_OK : PJ_UNSUPPORTED;
	case A_MET:
		if (!d->b_ok)
			return PJ_UNSUPPORTED;
		break;
	default:
		return PJ_UNSUPPORTED;
	}
	// Balance the next frame: with each thread's speed over its part of this one and the other
	// thread's late start, the split that would have had pj_thread_b finish 30 µs before
	// pj_thread_a (whose caller then finds it done instead of sleeping until it is); half-way
	// from the current one.
	if (d->a_ns > 0 && d->b_ns > 0) {
		double f = d->split, ca = (double)d->a_ns / f, cb = (double)d->b_ns / (1 - f);
		double best = (cb + (double)d->b_late + 30e3) / (ca + cb);
		f = (f + best) / 2;
		d->split = f < 0.25 ? 0.25 : f > 0.75 ? 0.75 : f;
	}
	return PJ_OK;
}
