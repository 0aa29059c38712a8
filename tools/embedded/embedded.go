// Package embedded runs streamdet with nothing installed: in-process servers that speak the real
// protocols on loopback — a Kafka-protocol cluster (franz-go's kfake), an S3 API (gofakes3) and
// Redis (miniredis) — and the ingest, detect and sink services against them through exactly the
// code paths used in production (their Run functions; only the endpoints differ). detctl dev and
// detctl demo are built on it.
package embedded

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamdet/streamdet/pkg/pipeline"
	"github.com/streamdet/streamdet/pkg/service"
	"github.com/streamdet/streamdet/pkg/telemetry"
	"github.com/streamdet/streamdet/services/detect"
	"github.com/streamdet/streamdet/services/ingest"
	"github.com/streamdet/streamdet/services/sink"
)

// Options configure the embedded servers. Zero ports pick free ones.
type Options struct {
	KafkaPort, S3Port, RedisPort     int
	IngestPort, DetectPort, SinkPort int
	Partitions                       int // per topic; default 3
	ModelName                        string
	// Configure, when set, adjusts the services' configurations before they start.
	Configure func(*Configs)
}

// Configs are the three services' configurations in the all-in-one mode: typed values built from
// each service's DefaultConfig, never strings.
type Configs struct {
	Ingest ingest.Config
	Detect detect.Config
	Sink   sink.Config
}

// Stack is the running embedded servers and services.
type Stack struct {
	Env      map[string]string // the endpoints and credentials clients (detctl, the user's shell) use
	Configs  Configs           // what the services run with
	kafka    *kfake.Cluster
	s3       *http.Server
	redis    *miniredis.Miniredis
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	mu       sync.Mutex
	errs     []error
	services []string
}

func secret() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func listen(port int) (net.Listener, error) {
	return net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
}

func addr(port int) string {
	if port == 0 {
		l, err := listen(0)
		if err != nil {
			return "127.0.0.1:0"
		}
		defer l.Close()
		return l.Addr().String()
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// StartServers starts Kafka, S3 and Redis.
func StartServers(o Options) (*Stack, error) {
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	s := &Stack{}
	var topics []string
	for _, t := range []string{"frames.raw", "frames", "detections", "detections.shadow", "dlq", "frames.events"} {
		topics = append(topics, "streamdet."+t)
	}
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(int32(o.Partitions), topics...)}
	if o.KafkaPort != 0 {
		kopts = append(kopts, kfake.Ports(o.KafkaPort))
	}
	var err error
	if s.kafka, err = kfake.NewCluster(kopts...); err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	ln, err := listen(o.S3Port)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	s.s3 = &http.Server{Handler: gofakes3.New(s3mem.New()).Server(), ReadHeaderTimeout: 10 * time.Second}
	go s.s3.Serve(ln)
	s.redis = miniredis.NewMiniRedis()
	redisPW := secret()
	s.redis.RequireAuth(redisPW)
	if err := s.redis.StartAddr(addr(o.RedisPort)); err != nil {
		s.Close()
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	s.Env = map[string]string{
		"STREAMDET_KAFKA_BROKERS":    strings.Join(s.kafka.ListenAddrs(), ","),
		"STREAMDET_MINIO_ENDPOINT":   ln.Addr().String(),
		"STREAMDET_MINIO_ACCESS_KEY": "dev-" + secret()[:8],
		"STREAMDET_MINIO_SECRET_KEY": secret(),
		"STREAMDET_REDIS_ADDR":       s.redis.Addr(),
		"STREAMDET_REDIS_PASSWORD":   redisPW,
		"STREAMDET_INGEST_ADDR":      addr(o.IngestPort),
		"STREAMDET_DETECT_ADDR":      addr(o.DetectPort),
		"STREAMDET_SINK_ADDR":        addr(o.SinkPort),
	}
	if lib := os.Getenv("ONNXRUNTIME_LIB"); lib != "" {
		s.Env["ONNXRUNTIME_LIB"] = lib
	}
	s.Configs = s.configs(o.ModelName)
	if o.Configure != nil {
		o.Configure(&s.Configs)
	}
	return s, nil
}

// Exports returns the environment as shell export lines, sorted.
func (s *Stack) Exports() string {
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, s.Env[k])
	}
	return b.String()
}

// configs builds the services' configurations for these servers from their defaults.
func (s *Stack) configs(model string) Configs {
	shared := func(c pipeline.Config, addr string) pipeline.Config {
		c.Kafka.Brokers = strings.Split(s.Env["STREAMDET_KAFKA_BROKERS"], ",")
		c.Store.Endpoint, c.Store.AccessKey, c.Store.SecretKey = s.Env["STREAMDET_MINIO_ENDPOINT"], s.Env["STREAMDET_MINIO_ACCESS_KEY"], s.Env["STREAMDET_MINIO_SECRET_KEY"]
		c.Server.Addr = addr
		c.Server.Auth = service.AuthNone // the all-in-one listens on loopback only, for one developer: no tokens
		return c
	}
	in := ingest.DefaultConfig()
	in.Config = shared(in.Config, s.Env["STREAMDET_INGEST_ADDR"])
	in.Events = false
	det := detect.DefaultConfig()
	det.Config = shared(det.Config, s.Env["STREAMDET_DETECT_ADDR"])
	det.Redis.Addr, det.Redis.Password = s.Env["STREAMDET_REDIS_ADDR"], s.Env["STREAMDET_REDIS_PASSWORD"]
	det.ModelName = model
	sk := sink.DefaultConfig()
	sk.Config = shared(sk.Config, s.Env["STREAMDET_SINK_ADDR"])
	sk.Annotate, sk.FlushInterval = true, 500*time.Millisecond
	return Configs{Ingest: in, Detect: det, Sink: sk}
}

// RunServices starts ingest, detect and sink in-process with the stack's configurations.
func (s *Stack) RunServices(ctx context.Context) error {
	ctx, s.cancel = context.WithCancel(ctx)
	c := s.Configs
	for _, svc := range []struct {
		name string
		run  func(context.Context, *telemetry.Telemetry) error
	}{
		{"ingest", func(ctx context.Context, tel *telemetry.Telemetry) error {
			return ingest.Run(ctx, c.Ingest, ingest.Deps{Deps: pipeline.Deps{Telemetry: tel}})
		}},
		{"detect", func(ctx context.Context, tel *telemetry.Telemetry) error {
			return detect.Run(ctx, c.Detect, detect.Deps{Deps: pipeline.Deps{Telemetry: tel}})
		}},
		{"sink", func(ctx context.Context, tel *telemetry.Telemetry) error {
			return sink.Run(ctx, c.Sink, sink.Deps{Deps: pipeline.Deps{Telemetry: tel}})
		}},
	} {
		tel, err := telemetry.Setup(ctx, svc.name)
		if err != nil {
			return err
		}
		s.services = append(s.services, svc.name)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := svc.run(ctx, tel)
			tel.Shutdown(context.Background())
			if err != nil && !errors.Is(err, context.Canceled) {
				s.mu.Lock()
				s.errs = append(s.errs, fmt.Errorf("%s: %w", svc.name, err))
				s.mu.Unlock()
			}
		}()
	}
	return s.WaitReady(ctx, 2*time.Minute)
}

// WaitReady waits until every service answers /readyz with 200.
func (s *Stack) WaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, name := range s.services {
		url := "http://" + s.Env["STREAMDET_"+strings.ToUpper(name)+"_ADDR"] + "/readyz"
		for {
			if err := s.Err(); err != nil {
				return err
			}
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s not ready at %s", name, url)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// Err returns the errors services stopped with.
func (s *Stack) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// Close stops the services (draining them) and then the servers.
func (s *Stack) Close() error {
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
	}
	if s.s3 != nil {
		s.s3.Close()
	}
	if s.redis != nil {
		s.redis.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
	return s.Err()
}
