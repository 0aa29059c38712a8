// Package contract holds the Go types of streamdet's messages and outputs, shared by the
// services, detctl and the tests. Each type documents the JSON Schema under schemas/ it matches.
package contract

// Detection is one detected object, as printed by `detctl detect` and carried in detections
// messages. Box is [x1, y1, x2, y2] in pixels of the original frame, clipped to it.
type Detection struct {
	ClassID int        `json:"class_id"`
	Label   string     `json:"label"`
	Score   float32    `json:"score"`
	Box     [4]float32 `json:"box"`
}

// IoU is the intersection over union of two [x1, y1, x2, y2] boxes.
func IoU(a, b [4]float32) float32 {
	ix, iy := min(a[2], b[2])-max(a[0], b[0]), min(a[3], b[3])-max(a[1], b[1])
	if ix <= 0 || iy <= 0 {
		return 0
	}
	in := ix * iy
	union := (a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - in
	if union <= 0 {
		return 0
	}
	return in / union
}

// Matches reports whether in holds a detection of d's class overlapping it by at least minIoU.
func Matches(d Detection, in []Detection, minIoU float32) bool {
	for _, o := range in {
		if o.ClassID == d.ClassID && IoU(o.Box, d.Box) >= minIoU {
			return true
		}
	}
	return false
}
