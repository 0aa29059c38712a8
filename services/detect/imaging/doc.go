// Package imaging decodes untrusted encoded frames (JPEG, PNG) into packed 8-bit RGB, refusing
// anything over the configured byte and pixel limits before a single pixel is decoded.
//
// JPEG goes through libjpeg-turbo (cgo, Debian's libturbojpeg0-dev) and is scaled in the DCT
// domain when the frame is much larger than the size the caller needs: the decoder picks the
// smallest of libjpeg-turbo's n/8 scaling factors whose output still covers the requested
// size, so a 1920×1080 frame bound for a 640×640 model decodes at 3/8 (720×405) and is never
// upsampled afterwards. Building with the tag `noturbojpeg` swaps in Go's image/jpeg (no cgo,
// no DCT scaling). PNG always uses Go's image/png.
//
// With Decoder.Threads ≥ 2, a large (≥ 64 KiB) baseline JPEG decoded at 1/8, 1/4 (or 1/2 for
// 4:4:4 and grayscale) is decoded on two threads by pjpeg.c: JPEG's Huffman-coded data is
// serial, so one thread decodes from the start while the other starts in the middle and falls
// into step with the code boundaries; where the first reaches a point the second passed, the
// second's work is kept, its DC predictors corrected. The pixels are libjpeg-turbo's, byte for
// byte; anything pjpeg.c does not cover goes to libjpeg-turbo. On the project's 2-core machine
// a 1920×1080 frame at 1/4 takes about two thirds of libjpeg-turbo's time (docs/benchmarks.md).
//
// Colour handling follows OpenCV's imread(IMREAD_COLOR), which the reference implementations of
// the supported detectors use: grayscale is replicated to three channels, CMYK/YCCK JPEGs are
// converted with the inverted-Adobe convention (R = C·K/255), PNG alpha is dropped (not
// composited) and 16-bit PNG samples keep their high byte.
package imaging
