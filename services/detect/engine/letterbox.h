// The inner loops of the letterbox preprocessing (preprocess.go), in C for speed: the same
// integer arithmetic as OpenCV's INTER_LINEAR resize, so the output is the same to the bit.
#ifndef STREAMDET_LETTERBOX_H
#define STREAMDET_LETTERBOX_H

#include <stdint.h>

// sd_letterbox_rows resizes output rows [y0, y1) of an nw-wide image from packed 8-bit RGB
// (pix, stride, height rows) and writes them, scaled, into three float planes at
// (left, top + dy) with row length rowlen. xofs/xofs1/xw are the per-column source byte offsets
// and right-pixel weights (0..2048), ry/wy the per-row source row and lower-row weight. hb0 and
// hb1 are scratch rows of 3*nw int32.
// Only the resized area is written; the caller fills the padding.
void sd_letterbox_rows(const uint8_t *pix, int stride, int height, const int32_t *xofs, const int32_t *xofs1,
                       const int32_t *xw, int nw, const int32_t *ry, const int32_t *wy, int y0, int y1, int32_t *hb0,
                       int32_t *hb1, float *c0, float *c1, float *c2, int rowlen, int top, int left, float scale);

#endif
