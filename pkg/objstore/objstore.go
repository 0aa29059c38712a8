// Package objstore is streamdet's object storage (MinIO or any S3 API) layer: configuration from
// the environment with non-default credentials required, idempotent bucket creation, and
// put/get of whole objects with a trace span each and errors classified as missing (permanent)
// or anything else (transient, to be retried).
package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/streamdet/streamdet/pkg/envconf"
	"github.com/streamdet/streamdet/pkg/tlsconf"
)

// ErrNotFound: the object does not exist (a permanent failure for a frame reference).
var ErrNotFound = errors.New("objstore: object not found")

// ErrTooLarge: the object is larger than the caller's limit (permanent).
var ErrTooLarge = errors.New("objstore: object over the size limit")

// ErrInvalidName: a bucket or object name S3 would refuse (permanent).
var ErrInvalidName = errors.New("objstore: invalid bucket or object name")

// checkNames refuses names S3 would refuse, before any request (minio-go reports them as plain
// errors, which could not be told from a network failure).
func checkNames(bucket, key string) error {
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return fmt.Errorf("%w: bucket %q: %v", ErrInvalidName, bucket, err)
	}
	if err := s3utils.CheckValidObjectName(key); err != nil {
		return fmt.Errorf("%w: key of %d bytes: %v", ErrInvalidName, len(key), err)
	}
	return nil
}

// Config is how a service reaches object storage.
type Config struct {
	// Endpoint is host:port. STREAMDET_MINIO_ENDPOINT. Required.
	Endpoint string
	// AccessKey and SecretKey: STREAMDET_MINIO_ACCESS_KEY, STREAMDET_MINIO_SECRET_KEY (or
	// STREAMDET_MINIO_SECRET_KEY_FILE). Required; MinIO's default minioadmin is refused.
	AccessKey, SecretKey string
	// TLS: STREAMDET_MINIO_TLS=true, STREAMDET_MINIO_TLS_CA_FILE, _CERT_FILE, _KEY_FILE (see tlsconf).
	TLS tlsconf.Config
	// Region: STREAMDET_MINIO_REGION. Default us-east-1.
	Region string
}

// FromEnv reads the Config.
func FromEnv(env envconf.Env) Config {
	return Config{
		Endpoint:  env.String("STREAMDET_MINIO_ENDPOINT", ""),
		AccessKey: env.String("STREAMDET_MINIO_ACCESS_KEY", ""),
		SecretKey: env.Secret("STREAMDET_MINIO_SECRET_KEY"),
		TLS:       tlsconf.FromEnv(env, "STREAMDET_MINIO"),
		Region:    env.String("STREAMDET_MINIO_REGION", "us-east-1"),
	}
}

// Validate checks the Config.
func (c Config) Validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("STREAMDET_MINIO_ENDPOINT is required"))
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		errs = append(errs, errors.New("STREAMDET_MINIO_ACCESS_KEY and STREAMDET_MINIO_SECRET_KEY(_FILE) are required"))
	}
	if c.AccessKey == "minioadmin" || c.SecretKey == "minioadmin" {
		errs = append(errs, errors.New("MinIO's default credentials (minioadmin) are refused; set non-default ones"))
	}
	errs = append(errs, c.TLS.Validate())
	return errors.Join(errs...)
}

// Store is a client bound to one endpoint.
type Store struct {
	mc     *minio.Client
	tracer trace.Tracer
}

// Option configures a Store.
type Option func(*Store)

// WithTracerProvider gives the Store a tracer provider for its client spans (default: none).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(s *Store) { s.tracer = tp.Tracer("github.com/streamdet/streamdet/pkg/objstore") }
}

// New creates a Store.
func New(c Config, options ...Option) (*Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	t, err := c.TLS.Client()
	if err != nil {
		return nil, err
	}
	opts := &minio.Options{Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: c.TLS.Enabled, Region: c.Region}
	if t != nil {
		tr, err := minio.DefaultTransport(true)
		if err != nil {
			return nil, fmt.Errorf("objstore: %w", err)
		}
		tr.TLSClientConfig = t
		opts.Transport = tr
	}
	mc, err := minio.New(c.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	s := &Store{mc: mc, tracer: tracenoop.NewTracerProvider().Tracer("")}
	for _, o := range options {
		o(s)
	}
	return s, nil
}

// Client exposes the MinIO client for operations the Store does not wrap.
func (s *Store) Client() *minio.Client { return s.mc }

// EnsureBucket creates the bucket unless it exists.
func (s *Store) EnsureBucket(ctx context.Context, bucket string) error {
	ok, err := s.mc.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("objstore: check bucket %s: %w", bucket, err)
	}
	if ok {
		return nil
	}
	if err := s.mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		if r := minio.ToErrorResponse(err); r.Code == "BucketAlreadyOwnedByYou" || r.Code == "BucketAlreadyExists" {
			return nil
		}
		return fmt.Errorf("objstore: make bucket %s: %w", bucket, err)
	}
	return nil
}

// Ping checks that the endpoint answers with these credentials, asking only about bucket (so a
// least-privilege policy need not allow listing every bucket).
func (s *Store) Ping(ctx context.Context, bucket string) error {
	_, err := s.mc.BucketExists(ctx, bucket)
	return err
}

// Put writes a whole object.
func (s *Store) Put(ctx context.Context, bucket, key string, data []byte, contentType string) error {
	ctx, span := s.tracer.Start(ctx, "objstore put", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("s3.bucket", bucket), attribute.String("s3.key", key), attribute.Int("s3.size", len(data))))
	defer span.End()
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	_, err := s.mc.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("objstore: put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Get reads a whole object of at most max bytes; a missing object is ErrNotFound. It is one
// GET request: the size the server announces is checked before anything is read or allocated
// (minio-go's Object would send a HEAD first to learn it, a second request per object), and
// the body is read into one buffer of that size.
func (s *Store) Get(ctx context.Context, bucket, key string, max int64) ([]byte, error) {
	ctx, span := s.tracer.Start(ctx, "objstore get", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("s3.bucket", bucket), attribute.String("s3.key", key)))
	defer span.End()
	if err := checkNames(bucket, key); err != nil {
		return nil, err
	}
	b, err := s.get(ctx, bucket, key, max)
	if err == nil {
		span.SetAttributes(attribute.Int("s3.size", len(b)))
		return b, nil
	}
	span.SetStatus(codes.Error, err.Error())
	if errors.Is(err, ErrTooLarge) {
		return nil, err
	}
	if r := minio.ToErrorResponse(err); r.Code == "NoSuchKey" || r.Code == "NoSuchBucket" {
		return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, bucket, key)
	}
	return nil, fmt.Errorf("objstore: get %s/%s: %w", bucket, key, err)
}

func (s *Store) get(ctx context.Context, bucket, key string, max int64) ([]byte, error) {
	body, st, _, err := minio.Core{Client: s.mc}.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if st.Size > max {
		return nil, fmt.Errorf("%w: %s/%s is %d bytes, limit %d", ErrTooLarge, bucket, key, st.Size, max)
	}
	if st.Size < 0 { // no Content-Length: read up to the limit
		b, err := io.ReadAll(io.LimitReader(body, max+1))
		if err == nil && int64(len(b)) > max {
			err = fmt.Errorf("%w: %s/%s over %d bytes", ErrTooLarge, bucket, key, max)
		}
		return b, err
	}
	b := make([]byte, st.Size)
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, fmt.Errorf("reading %d bytes: %w", st.Size, err)
	}
	return b, nil
}

// ErrExists: Create found the object already there.
var ErrExists = errors.New("objstore: object exists")

// Create writes a whole object only if none exists under key (If-None-Match: *): of two
// concurrent creations one fails with ErrExists.
func (s *Store) Create(ctx context.Context, bucket, key string, data []byte, contentType string) error {
	ctx, span := s.tracer.Start(ctx, "objstore create", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("s3.bucket", bucket), attribute.String("s3.key", key), attribute.Int("s3.size", len(data))))
	defer span.End()
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: contentType}
	opts.SetMatchETagExcept("*")
	_, err := s.mc.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), opts)
	if e := minio.ToErrorResponse(err); e.Code == "PreconditionFailed" || e.StatusCode == 412 {
		return fmt.Errorf("%w: %s/%s", ErrExists, bucket, key)
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("objstore: create %s/%s: %w", bucket, key, err)
	}
	return nil
}

// List returns the keys under prefix, recursively, in lexical order.
func (s *Store) List(ctx context.Context, bucket, prefix string) ([]string, error) {
	if err := s3utils.CheckValidBucketName(bucket); err != nil {
		return nil, fmt.Errorf("%w: bucket %q: %v", ErrInvalidName, bucket, err)
	}
	var keys []string
	for o := range s.mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("objstore: list %s/%s: %w", bucket, prefix, o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys, nil
}

// Remove deletes an object; a missing one is not an error.
func (s *Store) Remove(ctx context.Context, bucket, key string) error {
	if err := checkNames(bucket, key); err != nil {
		return err
	}
	if err := s.mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("objstore: remove %s/%s: %w", bucket, key, err)
	}
	return nil
}
