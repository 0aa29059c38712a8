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
