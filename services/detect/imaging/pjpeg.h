//go:build !noturbojpeg

// pjpeg: a two-thread decoder for baseline JPEGs at a reduced DCT scale, whose output is
// byte-for-byte what libjpeg-turbo's tjDecompress2 gives at the same scale (see pjpeg.c).
#ifndef STREAMDET_PJPEG_H
#define STREAMDET_PJPEG_H

#include <stddef.h>
#include <stdint.h>

typedef struct pj pj;

// Results of pj_prepare.
enum {
	PJ_OK = 0,
	PJ_UNSUPPORTED = 1, // valid or not, not for this decoder: use libjpeg-turbo
	PJ_NOMEM = 2,
};

pj *pj_new(void);
void pj_free(pj *d);

// pj_prepare parses the headers of data for a decode at scale/8 (scale 1, 2 or 4) into out
// (outW*outH*3 bytes, packed RGB). It returns PJ_UNSUPPORTED for anything but a
// single-scan baseline Huffman JPEG with 8-bit samples, 1 component or 3 YCbCr components
// sampled 4:4:4 or 4:2:0 (4:2:0 at scale 1 or 2), no restart markers.
//
// The arithmetic is libjpeg's C code's. libjpeg-turbo's SIMD inverse DCTs agree with it while
// dequantised coefficients, intermediate and final values stay in their 16-bit lanes, as every
// frame encoded from 8-bit samples does; a damaged or crafted frame can leave them, and such
// pixels then come out as libjpeg-turbo's C build gives them, not its SIMD build. With checked
// set, the decode also tracks those ranges and refuses (PJ_UNSUPPORTED) a frame that left them,
// so that what it accepts is byte for byte libjpeg-turbo's SIMD output; tests use it.
int pj_prepare(pj *d, const uint8_t *data, size_t len, int scale, uint8_t *out, int outW, int outH, int checked);

// pj_thread_a and pj_thread_b, run at the same time on two threads, decode the frame into out;
// pj_finish then returns PJ_OK, or PJ_UNSUPPORTED when the data must go through libjpeg-turbo
// instead (damaged, truncated, or the halves did not meet cleanly). Neither thread waits long for
// the other: if pj_thread_b never runs, pj_thread_a decodes everything after at most 1 ms.
void pj_thread_a(pj *d);
void pj_thread_b(pj *d);
int pj_finish(pj *d);

// The steps the threads take, for tests that run them one after the other (deterministically
// meeting): pj_spec decodes speculatively from the split point, pj_main from the start until it
// meets one of pj_spec's MCU starts, pj_join checks the meeting and pj_output writes MCU rows
// [r0, r1) into out with thread t's scratch (0 or 1).
void pj_spec(pj *d);
void pj_main(pj *d);
int pj_join(pj *d);
void pj_output(pj *d, int r0, int r1, int t);

// pj_rows returns the number of MCU rows of the prepared frame.
int pj_rows(pj *d);

// pj_met returns the MCU where the two decodings met, or -1 when pj_main decoded everything.
int pj_met(pj *d);

#endif
