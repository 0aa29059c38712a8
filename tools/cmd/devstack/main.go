// Command devstack is the Kafka-speaking half of deploy/local/stack.sh: it checks that a broker
// answers metadata requests and creates the project's topics with explicit partition counts
// (the local broker runs with auto.create.topics.enable=false).
//
//	devstack ping   --brokers 127.0.0.1:9092
//	devstack topics --brokers 127.0.0.1:9092 streamdet.frames:6 streamdet.dlq:3 ...
//	devstack certs  --dir DIR        (the secure stack's CA and server certificate)
//	devstack provision --dir DIR --brokers H:P --minio H:P --redis H:P [--prefix streamdet]
//	                                 (users, ACLs, policies, buckets, topics; DIR/<service>.env)
//	devstack ping   --dir DIR --brokers H:P   (SASL_SSL as the admin user)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: devstack ping|topics --brokers HOST:PORT [name:partitions ...]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma-separated")
	timeout := fs.Duration("timeout", 10*time.Second, "deadline for the whole command")
	dir := fs.String("dir", "", "the secure stack's state directory (certs, provision, and ping over SASL_SSL)")
	minioAddr := fs.String("minio", "", "MinIO endpoint (provision)")
	redisAddr := fs.String("redis", "", "Redis address (provision)")
	prefix := fs.String("prefix", "streamdet", "topic prefix (provision)")
	wantBrokers := fs.Int("want-brokers", 1, "ping: succeed only once the cluster's metadata lists this many brokers")
	replication := fs.Int("replication", 1, "topics: replication factor of the topics created")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(strings.Split(*brokers, ",")...), Timeout: *timeout}
	if *dir != "" && args[0] == "ping" {
		pw, err := secret(*dir, "admin-kafka")
		if err != nil {
			return err
		}
		ca, err := os.ReadFile(*dir + "/ca.pem")
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		mech, err := scram.Mechanism(scram.SHA512, "admin", pw)
		if err != nil {
			return err
		}
		client.Transport = &kafka.Transport{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, SASL: mech}
	}
	switch args[0] {
	case "certs":
		return writeCerts(*dir)
	case "provision":
		return provision(ctx, *dir, *brokers, *minioAddr, *redisAddr, *prefix)
	case "ping":
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
		if err != nil {
			return fmt.Errorf("metadata from %s: %w", *brokers, err)
		}
		if md.Controller.ID < 0 || len(md.Brokers) == 0 {
			return fmt.Errorf("metadata from %s: no controller elected yet", *brokers)
		}
		if len(md.Brokers) < *wantBrokers {
			return fmt.Errorf("metadata from %s: %d of %d brokers registered", *brokers, len(md.Brokers), *wantBrokers)
		}
		return nil
	case "topics":
		if *replication < 1 || *replication > 5 {
			return fmt.Errorf("-replication %d: want 1…5", *replication)
		}
		return ensureTopics(ctx, client, *replication, fs.Args())
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func ensureTopics(ctx context.Context, client *kafka.Client, replication int, specs []string) error {
	var want []kafka.TopicConfig
	for _, s := range specs {
		name, parts, ok := strings.Cut(s, ":")
		n, err := strconv.Atoi(parts)
		if !ok || err != nil || n < 1 || name == "" {
			return fmt.Errorf("topic %q: want name:partitions with partitions >= 1", s)
		}
		want = append(want, kafka.TopicConfig{Topic: name, NumPartitions: n, ReplicationFactor: replication})
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: want})
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, t := range want {
		err := resp.Errors[t.Topic]
		switch {
		case err == nil:
			fmt.Printf("created %s (%d partitions × %d replicas)\n", t.Topic, t.NumPartitions, t.ReplicationFactor)
		case errors.Is(err, kafka.TopicAlreadyExists):
			fmt.Printf("exists  %s\n", t.Topic)
		default:
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
	}
	return nil
}
