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
// Colour handling follows OpenCV's imread(IMREAD_COLOR), which the reference implementations of
// the supported detectors use: grayscale is replicated to three channels, CMYK/YCCK JPEGs are
// converted with the inverted-Adobe convention (R = C·K/255), PNG alpha is dropped (not
// composited) and 16-bit PNG samples keep their high byte.
package imaging
