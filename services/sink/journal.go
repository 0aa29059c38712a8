package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/objstore"
)

// The journal makes the sink's files exactly-once across crashes. Before a batch's objects are
// written, one entry per Kafka partition of the batch records which rows (offset and dedupe key)
// go into which objects. When a partition is assigned (at start, or after a rebalance rewind)
// delivery resumes from its committed offset C; every journalled row at or after C is about to
// be delivered again, so recovery removes those rows from the objects the journal names (the
// objects are rewritten without them, or deleted) before any row of the partition is handled.
// Rows before C stay, and their keys — with those of older entries, up to a retention bound —
// seed the de-duplication set, so a duplicate from upstream is recognised after a restart too.
//
// Entries live beside the data, under _streamdet/ (a prefix analytics tools skip):
//
//	_streamdet/sink/<group>/<topic>/<partition>/<first offset>.json
type journalEntry struct {
	Partition int      `json:"partition"`
	First     int64    `json:"first"`
	Last      int64    `json:"last"`
	Objects   []string `json:"objects"`
	Rows      []jrow   `json:"rows"`

	name string // its object key
}

type jrow struct {
	Offset int64  `json:"o"`
	Key    string `json:"k"`
	Object int    `json:"i"` // index into Objects
}

// maxEntryBytes bounds an entry read back (a batch holds at most 100,000 rows of ≤ 520-byte keys).
const maxEntryBytes = 64 << 20

type journal struct {
	store  Store
	bucket string
	prefix string // _streamdet/sink/<group>/<topic>/
	// entries per partition, oldest first: what this instance knows of the journal.
	entries map[int][]*journalEntry
}

func newJournal(store Store, bucket, group, topic string) *journal {
	return &journal{store: store, bucket: bucket, prefix: "_streamdet/sink/" + group + "/" + topic + "/", entries: map[int][]*journalEntry{}}
}

func (j *journal) partPrefix(p int) string { return fmt.Sprintf("%s%d/", j.prefix, p) }

func (j *journal) entryName(p int, first int64) string {
	return fmt.Sprintf("%s%020d.json", j.partPrefix(p), first)
}

// write puts an entry (before the objects it names).
func (j *journal) write(ctx context.Context, e *journalEntry) error {
	e.name = j.entryName(e.Partition, e.First)
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return j.store.Put(ctx, j.bucket, e.name, b, "application/json")
}

// load lists and reads a partition's entries, oldest first.
func (j *journal) load(ctx context.Context, p int) ([]*journalEntry, error) {
	names, err := j.store.List(ctx, j.bucket, j.partPrefix(p))
	if err != nil {
		return nil, fmt.Errorf("list journal of partition %d: %w", p, err)
	}
	sort.Strings(names)
	var out []*journalEntry
	for _, n := range names {
		b, err := j.store.Get(ctx, j.bucket, n, maxEntryBytes)
		if errors.Is(err, objstore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read journal entry %s: %w", n, err)
		}
		e := &journalEntry{name: n}
		if err := json.Unmarshal(b, e); err != nil || e.Partition != p {
			return nil, fmt.Errorf("journal entry %s is damaged (%v): refusing to guess what was written", n, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// remove deletes an entry.
func (j *journal) remove(ctx context.Context, e *journalEntry) error {
	if err := j.store.Remove(ctx, j.bucket, e.name); err != nil {
		return fmt.Errorf("remove journal entry %s: %w", e.name, err)
	}
	return nil
}

// recover undoes every journalled row of partition p at or after offset from: it rewrites each
// object holding such rows without them (deleting an object left empty) and rewrites or removes
// the entries. It returns the keys of rows kept (written for good) and of rows undone.
func (j *journal) recover(ctx context.Context, p int, from int64) (kept, undone []string, err error) {
	entries, err := j.load(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	var live []*journalEntry
	for _, e := range entries {
		drop := map[int]map[string]bool{} // object index → keys to remove
		var keep []jrow
		for _, r := range e.Rows {
			if r.Offset >= from {
				if drop[r.Object] == nil {
					drop[r.Object] = map[string]bool{}
				}
				drop[r.Object][r.Key] = true
				undone = append(undone, r.Key)
			} else {
				keep = append(keep, r)
				kept = append(kept, r.Key)
			}
		}
		if len(drop) == 0 {
			live = append(live, e)
			continue
		}
		for i, keys := range drop {
			if i < 0 || i >= len(e.Objects) {
				return nil, nil, fmt.Errorf("journal entry %s names object %d of %d", e.name, i, len(e.Objects))
			}
			if err := j.strip(ctx, e.Objects[i], keys); err != nil {
				return nil, nil, err
			}
		}
		if len(keep) == 0 {
			if err := j.remove(ctx, e); err != nil {
				return nil, nil, err
			}
			continue
		}
		e.Rows, e.Last = keep, keep[len(keep)-1].Offset // rows are journalled in offset order
		if err := j.write(ctx, e); err != nil {
			return nil, nil, fmt.Errorf("rewrite journal entry: %w", err)
		}
		live = append(live, e)
	}
	j.entries[p] = live
	return kept, undone, nil
}

// strip rewrites object key without the rows whose dedupe key is in drop.
func (j *journal) strip(ctx context.Context, key string, drop map[string]bool) error {
	b, err := j.store.Get(ctx, j.bucket, key, maxObjectBytes)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil // never written: the crash came between the entry and the object
	}
	if err != nil {
		return fmt.Errorf("recover %s: %w", key, err)
	}
	var out bytes.Buffer
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var d contract.Detections
		if err := json.Unmarshal(line, &d); err != nil {
			return fmt.Errorf("recover %s: a row is not JSON: %w", key, err)
		}
		if drop[dedupeKey(d)] {
			continue
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	if out.Len() == 0 {
		if err := j.store.Remove(ctx, j.bucket, key); err != nil {
			return fmt.Errorf("recover: remove %s: %w", key, err)
		}
		return nil
	}
	return j.store.Put(ctx, j.bucket, key, out.Bytes(), "application/x-ndjson")
}

// add records an entry written by this instance.
func (j *journal) add(e *journalEntry) { j.entries[e.Partition] = append(j.entries[e.Partition], e) }

// trim removes a partition's oldest entries beyond retain, but only entries wholly before the
// committed offset (an entry after it may still have to be undone).
func (j *journal) trim(ctx context.Context, p int, retain int, committed int64, ok bool) error {
	es := j.entries[p]
	for len(es) > retain && ok && es[0].Last < committed {
		if err := j.remove(ctx, es[0]); err != nil {
			return err
		}
		es = es[1:]
	}
	j.entries[p] = es
	return nil
}

// dedupeKey is the identity of a row: (stream, frame, model, version). Each part is a validated
// identifier (≤ 128 bytes, no NUL), so the key is unambiguous and at most 515 bytes.
func dedupeKey(d contract.Detections) string {
	return strings.Join([]string{d.StreamID, d.FrameID, d.Model.Name, d.Model.Version}, "\x00")
}
