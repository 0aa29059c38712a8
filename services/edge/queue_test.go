package edge

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func rec(stream string, seq int64, size int) Record {
	return Record{Topic: "t", Key: stream, Value: []byte(fmt.Sprintf("%s-%d-%s", stream, seq, strings.Repeat("x", size)))}
}

func TestQueueOrderAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := OpenQueue(path, 1<<20, DropOldest)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		for _, s := range []string{"a", "b"} {
			if _, err := q.Append(s, func(seq int64) (Record, error) { return rec(s, seq, 10), nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	es, _ := q.Peek(4)
	if len(es) != 4 || string(es[0].Value[:3]) != "a-1" || string(es[1].Value[:3]) != "b-1" || string(es[2].Value[:3]) != "a-2" {
		t.Fatalf("order: %v", es)
	}
	if err := q.Ack(es); err != nil {
		t.Fatal(err)
	}
	q.Close()
	// Reopened (as after kill -9: every Append was committed): the rest is there, in order,
	// and numbering continues.
	q, err = OpenQueue(path, 1<<20, DropOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if s := q.Stats(); s.Depth != 16 || s.Dropped != 0 {
		t.Fatalf("stats after reopen %+v", s)
	}
	es, _ = q.Peek(100)
	if string(es[0].Value[:3]) != "a-3" || len(es) != 16 {
		t.Fatalf("after reopen: %d, first %s", len(es), es[0].Value[:3])
	}
	if seq, _ := q.Append("a", func(seq int64) (Record, error) { return rec("a", seq, 1), nil }); seq != 11 {
		t.Fatalf("sequence after reopen %d, want 11", seq)
	}
}

func TestQueueBound(t *testing.T) {
	for _, policy := range []DropPolicy{DropOldest, DropNewest} {
		t.Run(string(policy), func(t *testing.T) {
			q, err := OpenQueue(filepath.Join(t.TempDir(), "q.db"), 64<<10, policy)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			dropped := 0
			for i := 0; i < 500; i++ {
				_, err := q.Append("s", func(seq int64) (Record, error) { return rec("s", seq, 1000), nil })
				if errors.Is(err, ErrDropped) {
					dropped++
				} else if err != nil {
					t.Fatal(err)
				}
			}
			s := q.Stats()
			if s.Bytes > 64<<10 || s.Depth+s.Dropped != 500 || s.Dropped == 0 {
				t.Fatalf("stats %+v", s)
			}
			es, _ := q.Peek(1000)
			first := string(es[0].Value[:6])
			if policy == DropOldest && (first == "s-1-xx" || !strings.HasPrefix(string(es[len(es)-1].Value), "s-500-")) {
				t.Fatalf("oldest kept: first %s", first)
			}
			if policy == DropNewest && (first != "s-1-xx" || int64(dropped) != s.Dropped) {
				t.Fatalf("newest policy: first %s, dropped %d/%d", first, dropped, s.Dropped)
			}
			if q.FileSize() > 1<<20 {
				t.Fatalf("queue file %d bytes for a 64 KiB bound", q.FileSize())
			}
		})
	}
	if _, err := OpenQueue(filepath.Join(t.TempDir(), "q.db"), 1<<20, "sometimes"); err == nil {
		t.Fatal("bad policy accepted")
	}
}

// TestStatusBeforeModel: /status answers while the model is still loading (slow boards take
// seconds), with no model named.
func TestStatusBeforeModel(t *testing.T) {
	q, err := OpenQueue(filepath.Join(t.TempDir(), "q.db"), 1<<20, DropOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	rt := &Runtime{cfg: Config{DeviceID: "d", Group: "g"}, queue: q, readers: map[string]*Reader{}}
	if st := rt.Status("running"); st.Model.Version != "" || st.Device != "d" {
		t.Fatalf("status %+v", st)
	}
	if _, _, err := rt.resolve("f"); err == nil {
		t.Fatal("resolved without a model")
	}
}
