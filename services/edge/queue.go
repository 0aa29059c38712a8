package edge

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DropPolicy says which records a full queue gives up.
type DropPolicy string

const (
	// DropOldest removes the oldest queued records to make room (the default: what is recent
	// matters most to an operator).
	DropOldest DropPolicy = "oldest"
	// DropNewest refuses the new record and keeps what is queued.
	DropNewest DropPolicy = "newest"
)

// Record is one message waiting for the uplink: a Kafka message's key, value and headers.
type Record struct {
	Topic   string            `json:"topic"`
	Key     string            `json:"key"`
	Value   []byte            `json:"value"`
	Headers map[string]string `json:"headers,omitempty"`
}

// Entry is a queued record and its position.
type Entry struct {
	Pos uint64
	Record
	size int64
}

// QueueStats are the queue's counters (they survive restarts).
type QueueStats struct {
	Depth   int64 `json:"depth"`   // records queued
	Bytes   int64 `json:"bytes"`   // their size
	Dropped int64 `json:"dropped"` // records given up by the drop policy, ever
}

// Queue is the edge's store and forward: a bounded, durable FIFO of records on disk (bbolt),
// with a per-stream sequence allocated in the same transaction as the record it numbers, so that
// after a crash (kill -9 included) every record that Append returned for is still queued and no
// sequence number is reused.
//
// Lifecycle: OpenQueue; Append, Peek, Ack and Stats from any goroutine; Close once.
type Queue struct {
	db       *bolt.DB
	maxBytes int64
	policy   DropPolicy
	notify   chan struct{}

	mu    sync.Mutex // serialises Append's bound check with Ack
	stats QueueStats
}

var (
	bucketRecords = []byte("records")
	bucketMeta    = []byte("meta")
	bucketSeq     = []byte("sequences")
	keyBytes      = []byte("bytes")
	keyDepth      = []byte("depth")
	keyDropped    = []byte("dropped")
)

// ErrDropped: the queue was full and the policy (DropNewest) refused the record.
var ErrDropped = errors.New("edge queue: full, record dropped by policy")

// OpenQueue opens (or creates) the queue at path, bounded to maxBytes of records.
func OpenQueue(path string, maxBytes int64, policy DropPolicy) (*Queue, error) {
	if policy != DropOldest && policy != DropNewest {
		return nil, fmt.Errorf("edge queue: drop policy %q: want oldest or newest", policy)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	q := &Queue{db: db, maxBytes: maxBytes, policy: policy, notify: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketMeta, bucketSeq} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		q.stats = QueueStats{Depth: getInt(m, keyDepth), Bytes: getInt(m, keyBytes), Dropped: getInt(m, keyDropped)}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	return q, nil
}

func getInt(b *bolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func putInt(b *bolt.Bucket, k []byte, n int64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(n))
	return b.Put(k, v[:])
}

func pos(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// size is what a record counts against the bound: its encoding on disk.
func encode(r Record) ([]byte, error) { return json.Marshal(r) }

// Append numbers the next record of stream (1, 2, … per stream, persisted) and queues what
// build makes of that number, in one durable transaction. When the queue would exceed its bound,
// DropOldest removes the oldest records first (counted in Dropped); DropNewest refuses the record
// with ErrDropped (counted too; the sequence number is used all the same, so the gap shows).
func (q *Queue) Append(stream string, build func(seq int64) (Record, error)) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var seq int64
	next := q.stats
	err := q.db.Update(func(tx *bolt.Tx) error {
		next = q.stats
		sb := tx.Bucket(bucketSeq)
		seq = getInt(sb, []byte(stream)) + 1
		if err := putInt(sb, []byte(stream), seq); err != nil {
			return err
		}
		rec, err := build(seq)
		if err != nil {
			return err
		}
		val, err := encode(rec)
		if err != nil {
			return err
		}
		size := int64(len(val))
		if size > q.maxBytes {
			return fmt.Errorf("edge queue: a record of %d bytes exceeds the queue's bound of %d", size, q.maxBytes)
		}
		rb, m := tx.Bucket(bucketRecords), tx.Bucket(bucketMeta)
		if next.Bytes+size > q.maxBytes {
			if q.policy == DropNewest {
				next.Dropped++
				return errDroppedNewest
			}
			c := rb.Cursor()
			for k, v := c.First(); k != nil && next.Bytes+size > q.maxBytes; k, v = c.First() {
				next.Bytes -= int64(len(v))
				next.Depth--
				next.Dropped++
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		id, err := rb.NextSequence()
		if err != nil {
			return err
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], id)
		if err := rb.Put(k[:], val); err != nil {
			return err
		}
		next.Bytes += size
		next.Depth++
		return q.putStats(m, next)
	})
	if errors.Is(err, errDroppedNewest) {
		// The refusal is recorded: the sequence advances and the drop is counted.
		err = q.db.Update(func(tx *bolt.Tx) error {
			if err := putInt(tx.Bucket(bucketSeq), []byte(stream), seq); err != nil {
				return err
			}
			return q.putStats(tx.Bucket(bucketMeta), next)
		})
		if err == nil {
			q.stats = next
			err = ErrDropped
		}
		return seq, err
	}
	if err != nil {
		return 0, err
	}
	q.stats = next
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return seq, nil
}

var errDroppedNewest = errors.New("dropped newest")

func (q *Queue) putStats(m *bolt.Bucket, s QueueStats) error {
	return errors.Join(putInt(m, keyBytes, s.Bytes), putInt(m, keyDepth, s.Depth), putInt(m, keyDropped, s.Dropped))
}

// Peek returns up to n of the oldest records, oldest first, without removing them.
func (q *Queue) Peek(n int) ([]Entry, error) {
	var out []Entry
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("edge queue: record %d: %w", pos(k), err)
			}
			out = append(out, Entry{Pos: pos(k), Record: r, size: int64(len(v))})
		}
		return nil
	})
	return out, err
}

// Ack removes records the uplink acknowledged (those the drop policy removed meanwhile are
// skipped).
func (q *Queue) Ack(entries []Entry) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	next := q.stats
	err := q.db.Update(func(tx *bolt.Tx) error {
		next = q.stats
		rb := tx.Bucket(bucketRecords)
		for _, e := range entries {
			var k [8]byte
			binary.BigEndian.PutUint64(k[:], e.Pos)
			if v := rb.Get(k[:]); v != nil {
				next.Bytes -= int64(len(v))
				next.Depth--
				if err := rb.Delete(k[:]); err != nil {
					return err
				}
			}
		}
		return q.putStats(tx.Bucket(bucketMeta), next)
	})
	if err == nil {
		q.stats = next
	}
	return err
}

// Stats returns the queue's counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats
}

// Sequence is the last sequence number allocated for stream.
func (q *Queue) Sequence(stream string) int64 {
	var n int64
	q.db.View(func(tx *bolt.Tx) error { n = getInt(tx.Bucket(bucketSeq), []byte(stream)); return nil })
	return n
}

// Notify receives a value after records were appended.
func (q *Queue) Notify() <-chan struct{} { return q.notify }

// FileSize is the size of the queue's file on disk.
func (q *Queue) FileSize() int64 {
	st, err := os.Stat(q.db.Path())
	if err != nil {
		return 0
	}
	return st.Size()
}

// Close closes the store.
func (q *Queue) Close() error { return q.db.Close() }
