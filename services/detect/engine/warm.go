package engine

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
)

// warmFrame is a mid-grey 640×480 PNG used for the test inference of a freshly loaded model.
var warmFrame = func() []byte {
	img := image.NewGray(image.Rect(0, 0, 640, 480))
	for i := range img.Pix {
		img.Pix[i] = uint8(96 + i%64)
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}()

// Warm runs a test inference, so that a model that loads but cannot run is refused before it
// serves, and the first real frame does not pay for ONNX Runtime's lazy initialisation.
func (e *Engine) Warm(ctx context.Context) error {
	if _, err := e.Detect(ctx, warmFrame); err != nil {
		return fmt.Errorf("warm-up inference: %w", err)
	}
	return nil
}
