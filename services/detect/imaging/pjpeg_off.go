//go:build !pjpeg && !noturbojpeg

package imaging

// ParallelDecoder reports whether this build has the two-thread decoder (build tag pjpeg).
const ParallelDecoder = false

type parallel struct{}

func (*parallel) close() {}

// parallelMinBytes: without the two-thread decoder no frame qualifies.
const parallelMinBytes = 1 << 62

func (d *Decoder) decodeParallel([]byte, scalingFactor, int, int) (RGB, bool) { return RGB{}, false }
