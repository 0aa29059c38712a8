package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/contract"
	"github.com/streamdet/streamdet/pkg/kafkax"
)

var dlqCommands = map[string]command{
	"ls":     {"list dead letters: detctl dlq ls [--reason R] [--json]", runDLQLs},
	"replay": {"re-publish dead letters to the topic they came from: detctl dlq replay [--reason R]", runDLQReplay},
}

// deadLetters reads the dead-letter topic from its start to its current end.
func deadLetters(ctx context.Context) ([]kafka.Message, error) {
	return readWholeTopic(ctx, func(t kafkax.Topics) string { return t.DLQ })
}

// readWholeTopic reads a topic of the project (picked from the configured names) from its start
// to its current end, partition by partition.
func readWholeTopic(ctx context.Context, pick func(kafkax.Topics) string) ([]kafka.Message, error) {
	cfg, err := kafkaConfig()
	if err != nil {
		return nil, err
	}
	client, err := cfg.Client()
	if err != nil {
		return nil, err
	}
	topic := pick(cfg.Topics())
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err == nil && len(md.Topics) == 1 && md.Topics[0].Error != nil {
		err = md.Topics[0].Error
	}
	if err != nil || len(md.Topics) == 0 {
		return nil, fmt.Errorf("topic %s: %v", topic, err)
	}
	d, err := cfg.Dialer()
	if err != nil {
		return nil, err
	}
	var out []kafka.Message
	for _, p := range md.Topics[0].Partitions {
		offs, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p.ID)}}})
		if err != nil {
			return nil, err
		}
		end := offs.Topics[topic][0].LastOffset
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: p.ID, Dialer: d, MaxWait: 200 * time.Millisecond})
		r.SetOffset(kafka.FirstOffset)
		for {
			if end <= 0 {
				break
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			m, err := r.ReadMessage(rctx)
			cancel()
			if err != nil {
				break
			}
			out = append(out, m)
			if m.Offset+1 >= end {
				break
			}
		}
		r.Close()
	}
	return out, nil
}

func info(m kafka.Message) contract.DeadLetter {
	var dl contract.DeadLetter
	for _, h := range m.Headers {
		if h.Key == contract.HeaderDeadLetter {
			json.Unmarshal(h.Value, &dl)
		}
	}
	return dl
}

func runDLQLs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dlq ls", flag.ContinueOnError)
	reason := fs.String("reason", "", "only this reason")
	asJSON := fs.Bool("json", false, "print each dead letter's document as JSON")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	msgs, err := deadLetters(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "detctl dlq ls:", err)
		return 1
	}
	for _, m := range msgs {
		dl := info(m)
		if *reason != "" && string(dl.Reason) != *reason {
			continue
		}
		if *asJSON {
			b, _ := json.Marshal(dl)
			fmt.Fprintln(stdout, string(b))
			continue
		}
		trace := dl.TraceID
		if l := traceLink(dl.TraceID); l != "" {
			trace = l
		}
		fmt.Fprintf(stdout, "%s  %-7s %-18s %s/%d/%d  key=%q  %d bytes  %s  trace=%s\n", dl.At.Local().Format(time.DateTime), dl.Stage, dl.Reason,
			dl.Source.Topic, dl.Source.Partition, dl.Source.Offset, m.Key, len(m.Value), dl.Message, trace)
	}
	return 0
}

func runDLQReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dlq replay", flag.ContinueOnError)
	reason := fs.String("reason", "", "only dead letters with this reason")
	if _, err := parse(fs, args); err != nil {
		return 2
	}
	msgs, err := deadLetters(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "detctl dlq replay:", err)
		return 1
	}
	cfg, _ := kafkaConfig()
	// Each message names its topic; the writer sends each call at once (the Config's linger).
	w, err := cfg.Writer("")
	if err != nil {
		fmt.Fprintln(stderr, "detctl dlq replay:", err)
		return 1
	}
	defer w.Close()
	n := 0
	for _, m := range msgs {
		dl := info(m)
		if dl.Source.Topic == "" || (*reason != "" && string(dl.Reason) != *reason) {
			continue
		}
		// The original message as it was: value, key and headers, without the dead-letter ones.
		var hs []kafka.Header
		for _, h := range m.Headers {
			if !strings.HasPrefix(h.Key, "streamdet_deadletter") {
				hs = append(hs, h)
			}
		}
		if err := w.WriteMessages(ctx, kafka.Message{Topic: dl.Source.Topic, Key: m.Key, Value: m.Value, Headers: hs}); err != nil {
			fmt.Fprintf(stderr, "detctl dlq replay: %s/%d/%d: %v\n", dl.Source.Topic, dl.Source.Partition, dl.Source.Offset, err)
			return 1
		}
		n++
	}
	fmt.Fprintf(stdout, "replayed %d dead letters\n", n)
	return 0
}
