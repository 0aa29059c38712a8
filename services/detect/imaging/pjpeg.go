//go:build pjpeg && !noturbojpeg

package imaging

// The two-thread baseline JPEG decoder (pjpeg.c) is opt-in (build tag pjpeg): it is hand-written
// C that parses untrusted bytes, and it pays off only when a session has two cores to itself
// (STREAMDET_ENGINE_SESSIONS=1 with DecodeThreads 2, the lowest-latency configuration); in the
// default configuration (one session per core) it never runs. `make fuzz-asan` runs its
// differential fuzz target under AddressSanitizer; `make test` runs a short version.

/*
#cgo CFLAGS: -O3
#cgo LDFLAGS: -lturbojpeg -lpthread
#include <stdlib.h>
#include "pjpeg.h"
*/
import "C"

import (
	"runtime"
	"sync"
)

// ParallelDecoder reports whether this build has the two-thread decoder.
const ParallelDecoder = true

type parallel struct{ p *C.pj }

func (h *parallel) close() {
	if h.p != nil {
		C.pj_free(h.p)
		h.p = nil
	}
}

// parallelMinBytes is the smallest JPEG decoded on two threads: below it the second thread's
// start-up and resynchronisation cost more than they save.
const parallelMinBytes = 64 << 10

// decodeParallel decodes a large baseline JPEG at a reduced DCT scale on two threads
// (pjpeg.c), with libjpeg-turbo's pixels (for the one exception, crafted out-of-range
// coefficients, see pj_prepare). It reports false, having written nothing the caller keeps, for
// whatever it does not handle; libjpeg-turbo then decodes the frame (and reports the error if
// the frame is bad).
func (d *Decoder) decodeParallel(data []byte, f scalingFactor, w, h int) (RGB, bool) {
	img, _, ok := d.decodeParallelAt(data, f, w, h, true, false)
	return img, ok
}

// decodeParallelAt is decodeParallel that also returns the MCU where the two decodings met (-1
// when the first decoded everything), for tests. With concurrent false it runs both halves one
// after the other on this thread, so that they always meet and the joining is checked
// deterministically. With checked set it refuses frames whose values leave the range where
// libjpeg-turbo's SIMD and C arithmetic agree (see pj_prepare).
func (d *Decoder) decodeParallelAt(data []byte, f scalingFactor, w, h int, concurrent, checked bool) (RGB, int, bool) {
	if (8*f.num)%f.denom != 0 {
		return RGB{}, -1, false
	}
	if d.h.par.p == nil {
		if d.h.par.p = C.pj_new(); d.h.par.p == nil {
			return RGB{}, -1, false
		}
	}
	buf := d.grow(w * h * 3)
	// pjpeg keeps pointers to data and buf across the calls below.
	var pin runtime.Pinner
	pin.Pin(&data[0])
	pin.Pin(&buf[0])
	defer pin.Unpin()
	p := d.h.par.p
	if C.pj_prepare(p, (*C.uint8_t)(&data[0]), C.size_t(len(data)), C.int(8*f.num/f.denom),
		(*C.uint8_t)(&buf[0]), C.int(w), C.int(h), C.int(b2i(checked))) != C.PJ_OK {
		return RGB{}, -1, false
	}
	if !concurrent {
		C.pj_spec(p)
		C.pj_main(p)
		if C.pj_join(p) != C.PJ_OK {
			return RGB{}, -1, false
		}
		C.pj_output(p, 0, C.pj_rows(p), 0)
		return RGB{Width: w, Height: h, Stride: 3 * w, Pix: buf}, int(C.pj_met(p)), true
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); C.pj_thread_b(p) }()
	C.pj_thread_a(p)
	wg.Wait()
	if C.pj_finish(p) != C.PJ_OK {
		return RGB{}, -1, false
	}
	return RGB{Width: w, Height: h, Stride: 3 * w, Pix: buf}, int(C.pj_met(p)), true
}
