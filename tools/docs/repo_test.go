package docs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoCommittedBinaries: no file tracked by git is an executable or library (ELF, Mach-O, PE)
// or larger than 4 MiB; build outputs belong in .gitignore, test data in ../shared or testdata/.
func TestNoCommittedBinaries(t *testing.T) {
	out, err := exec.Command("git", "-C", "../..", "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to check", err)
	}
	magics := [][]byte{{0x7f, 'E', 'L', 'F'}, {0xcf, 0xfa, 0xed, 0xfe}, {'M', 'Z'}}
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		path := filepath.Join("../..", name)
		f, err := os.Open(path)
		if err != nil {
			continue // deleted in the working tree
		}
		st, _ := f.Stat()
		head := make([]byte, 4)
		n, _ := io.ReadFull(f, head)
		f.Close()
		if st.Size() > 4<<20 {
			t.Errorf("%s: %d bytes tracked by git", name, st.Size())
		}
		for _, m := range magics {
			if n >= len(m) && bytes.Equal(head[:len(m)], m) {
				t.Errorf("%s: a binary is tracked by git; remove it and ignore the build output", name)
			}
		}
	}
}
