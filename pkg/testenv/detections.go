package testenv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/streamdet/streamdet/pkg/contract"
)

// CompareDetections applies the shared test data's criterion (../shared/README.md): every want
// detection scored ≥ minScore has a got detection of the same class at IoU ≥ minIoU, and every
// got detection scored ≥ minScore has such a want detection. The other side is searched at any
// score, so a box just under minScore on one side still counts. It returns one line per problem.
func CompareDetections(got, want []contract.Detection, minScore, minIoU float32) []string {
	var problems []string
	for _, w := range want {
		if w.Score >= minScore && !contract.Matches(w, got, minIoU) {
			problems = append(problems, fmt.Sprintf("missing %s %.3f %v", w.Label, w.Score, w.Box))
		}
	}
	for _, g := range got {
		if g.Score >= minScore && !contract.Matches(g, want, minIoU) {
			problems = append(problems, fmt.Sprintf("extra %s %.3f %v", g.Label, g.Score, g.Box))
		}
	}
	return problems
}

// PNGDeclaring is a PNG whose header (with a valid CRC) declares w×h pixels and which has no
// image data: only its header can be read. Tests use it for frames over the pixel limit.
func PNGDeclaring(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	binary.Write(&b, binary.BigEndian, uint32(13))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}
