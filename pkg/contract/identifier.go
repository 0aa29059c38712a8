package contract

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MaxIDLen is the longest identifier, in bytes.
const MaxIDLen = 128

// IDPattern is the one grammar of every identifier streamdet takes from outside — stream id,
// frame id, model name, model version, device id: an ASCII letter or digit, then up to 127
// letters, digits, '.', '_', ':' or '-'. It has no '/', so an identifier is never more than
// one segment of an object key or a path, and it cannot be "." or "..". It is documented in
// schemas/v1/identifier.schema.json.
const IDPattern = `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`

var idRE = regexp.MustCompile(IDPattern)

// ErrInvalidID: an identifier does not match IDPattern.
var ErrInvalidID = errors.New("invalid identifier")

// ValidID reports whether s matches IDPattern.
func ValidID(s string) bool { return len(s) <= MaxIDLen && idRE.MatchString(s) }

// CheckID returns nil when value, the identifier called what ("stream id", "frame id", ...), is
// valid, and otherwise an error wrapping ErrInvalidID that says what is wrong without echoing
// more than a short, quoted prefix of the value.
func CheckID(what, value string) error {
	if ValidID(value) {
		return nil
	}
	why := "must match " + IDPattern
	switch {
	case value == "":
		why = "is empty"
	case len(value) > MaxIDLen:
		why = fmt.Sprintf("is %d bytes, over %d", len(value), MaxIDLen)
	case strings.ContainsRune(value, '/'):
		why = "contains '/'"
	}
	return fmt.Errorf("%w: %s %s %s", ErrInvalidID, what, strconv.QuoteToASCII(short(value)), why)
}

// CheckIDs checks name/value pairs and joins every error.
func CheckIDs(pairs ...string) error {
	var errs []error
	for i := 0; i+1 < len(pairs); i += 2 {
		errs = append(errs, CheckID(pairs[i], pairs[i+1]))
	}
	return errors.Join(errs...)
}

// Errors of ValidateFrameRef besides ErrInvalidID.
var (
	// ErrSchema: a message breaks its schema (a field missing or malformed).
	ErrSchema = errors.New("schema violation")
	// ErrForbiddenObject: a message names an object outside what its reader may read.
	ErrForbiddenObject = errors.New("object not allowed")
)

var (
	frameKeyRE = regexp.MustCompile(`^sha256/([0-9a-f]{2})/([0-9a-f]{64})\.(jpg|png)$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// FrameKey is the object key of a frame: content-addressed by the sha256 of its bytes.
func FrameKey(sha256Hex, ext string) string { return "sha256/" + sha256Hex[:2] + "/" + sha256Hex + ext }

// ValidateFrameRef checks a frame reference as hostile input: identifiers by the one grammar,
// the fields detect needs, and the object it names only in framesBucket under the
// content-addressed key of its own sha256 — so that no message can make a reader fetch any other
// object.
func ValidateFrameRef(r FrameRef, framesBucket string) error {
	if err := CheckIDs("stream id", r.StreamID, "frame id", r.FrameID); err != nil {
		return err
	}
	var bad []string
	for _, f := range []struct {
		name string
		bad  bool
	}{{"sha256", !sha256RE.MatchString(r.SHA256)}, {"content_type", r.ContentType == ""}, {"width", r.Width <= 0}, {"height", r.Height <= 0}} {
		if f.bad {
			bad = append(bad, f.name)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: frame reference without a valid %s", ErrSchema, strings.Join(bad, ", "))
	}
	if r.Bucket != framesBucket {
		return fmt.Errorf("%w: frame reference names bucket %s, not the frames bucket", ErrForbiddenObject, strconv.QuoteToASCII(short(r.Bucket)))
	}
	if m := frameKeyRE.FindStringSubmatch(r.Key); m == nil || m[2] != r.SHA256 || m[1] != r.SHA256[:2] {
		return fmt.Errorf("%w: frame reference key %s is not the content-addressed key of its sha256", ErrForbiddenObject, strconv.QuoteToASCII(short(r.Key)))
	}
	return nil
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
