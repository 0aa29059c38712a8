#include "letterbox.h"

#define COEF_BITS 11

// hrow resizes one source row horizontally into three planar int32 rows of nw (h, h+nw, h+2nw).
static void hrow(const uint8_t *restrict src, const int32_t *restrict xofs, const int32_t *restrict xofs1,
                 const int32_t *restrict xw, int nw, int32_t *restrict h) {
	int32_t *restrict r = h, *restrict g = h + nw, *restrict b = h + 2 * nw;
	for (int dx = 0; dx < nw; dx++) {
		const uint8_t *p = src + xofs[dx], *q = src + xofs1[dx];
		int32_t w1 = xw[dx], w0 = (1 << COEF_BITS) - w1;
		r[dx] = p[0] * w0 + q[0] * w1;
		g[dx] = p[1] * w0 + q[1] * w1;
		b[dx] = p[2] * w0 + q[2] * w1;
	}
}

// vrow blends two horizontally resized rows of one channel into n floats.
static void vrow(const int32_t *restrict h0, const int32_t *restrict h1, int32_t w0, int32_t w1, int n, float scale,
                 float *restrict o) {
	const int32_t round = 1 << (2 * COEF_BITS - 1);
	for (int dx = 0; dx < n; dx++)
		o[dx] = (float)((h0[dx] * w0 + h1[dx] * w1 + round) >> (2 * COEF_BITS) & 255) * scale;
}

void sd_letterbox_rows(const uint8_t *pix, int stride, int height, const int32_t *xofs, const int32_t *xofs1,
                       const int32_t *xw, int nw, const int32_t *ry, const int32_t *wy, int y0, int y1, int32_t *hb0,
                       int32_t *hb1, float *c0, float *c1, float *c2, int rowlen, int top, int left, float scale) {
	// Rows r and r+1 differ in parity and are used in increasing order, so the slot of r's
	// parity holds either r or a row no longer needed.
	int32_t *hb[2] = {hb0, hb1};
	int have[2] = {-1, -1};
	for (int dy = y0; dy < y1; dy++) {
		int r = ry[dy];
		int32_t w1 = wy[dy], w0 = (1 << COEF_BITS) - w1;
		int rows[2] = {r, r + 1 < height ? r + 1 : height - 1};
		for (int i = 0; i < (w1 ? 2 : 1); i++) {
			int k = rows[i] & 1;
			if (have[k] != rows[i]) {
				hrow(pix + (long)rows[i] * stride, xofs, xofs1, xw, nw, hb[k]);
				have[k] = rows[i];
			}
		}
		const int32_t *restrict h0 = hb[r & 1], *restrict h1 = w1 ? hb[rows[1] & 1] : h0;
		long o = (long)(top + dy) * rowlen + left;
		vrow(h0, h1, w0, w1, nw, scale, c0 + o);
		vrow(h0 + nw, h1 + nw, w0, w1, nw, scale, c1 + o);
		vrow(h0 + 2 * nw, h1 + 2 * nw, w0, w1, nw, scale, c2 + o);
	}
}
