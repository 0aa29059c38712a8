package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/scram"
	"golang.org/x/crypto/pbkdf2"
)

// scramSalted is SCRAM's SaltedPassword: Hi(password, salt, i) = PBKDF2-HMAC-SHA-512.
func scramSalted(pw, salt []byte, iter int) []byte {
	return pbkdf2.Key(pw, salt, iter, sha512.Size, sha512.New)
}

// writeCerts makes a CA and one server certificate for 127.0.0.1 and localhost, in PEM:
// ca.pem, server.pem, server.key (PKCS #8, as Kafka's PEM keystore wants it), kafka-keystore.pem
// (key then chain), and the layout MinIO reads from --certs-dir (minio-certs/public.crt,
// private.key, CAs/ca.pem).
func writeCerts(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "streamdet local secure stack CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		return err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	srvPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	files := map[string][]byte{
		"ca.pem": caPEM, "server.pem": srvPEM, "server.key": keyPEM,
		"kafka-keystore.pem":      append(append([]byte(nil), keyPEM...), srvPEM...),
		"minio-certs/public.crt":  srvPEM,
		"minio-certs/private.key": keyPEM,
		"minio-certs/CAs/ca.pem":  caPEM,
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// service is one service's rights in the secure stack.
type serviceRights struct {
	name string
	// Kafka: topics read, topics written (suffixes of the topic prefix), consumer group prefix.
	read, write []string
	// MinIO: S3 actions per bucket resource.
	s3 map[string][]string
}

var rights = []serviceRights{
	{name: "ingest", read: []string{"frames.raw", "frames.events"}, write: []string{"frames", "dlq"}, s3: map[string][]string{
		"frames/*": {"s3:PutObject"}, "deadletters/*": {"s3:PutObject"}, "uploads/*": {"s3:GetObject"},
		"frames": {"s3:ListBucket"}, "deadletters": {"s3:ListBucket"},
	}},
	{name: "detect", read: []string{"frames"}, write: []string{"detections", "detections.shadow", "dlq"}, s3: map[string][]string{
		"frames/*": {"s3:GetObject"}, "models/*": {"s3:GetObject"}, "deadletters/*": {"s3:PutObject"},
		"models": {"s3:ListBucket"}, "deadletters": {"s3:ListBucket"},
	}},
	{name: "sink", read: []string{"detections", "devices"}, write: []string{"dlq"}, s3: map[string][]string{
		"detections/*": {"s3:PutObject", "s3:GetObject", "s3:DeleteObject"}, "annotated/*": {"s3:PutObject"},
		"frames/*": {"s3:GetObject"}, "deadletters/*": {"s3:PutObject"},
		"detections": {"s3:ListBucket"}, "annotated": {"s3:ListBucket"}, "deadletters": {"s3:ListBucket"},
	}},
}

func secret(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "secrets", name))
	return strings.TrimSpace(string(b)), err
}

// provision creates, on running secure servers, the topics, one SCRAM user per service with
// its ACLs, the buckets, one MinIO user per service with its policy, and writes
// <dir>/<service>.env: the variables that service runs with (secrets by file).
func provision(ctx context.Context, dir, kafkaAddr, minioAddr, redisAddr, prefix string) error {
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tlsc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	// Kafka, as the admin user.
	adminPW, err := secret(dir, "admin-kafka")
	if err != nil {
		return err
	}
	mech, err := scram.Mechanism(scram.SHA512, "admin", adminPW)
	if err != nil {
		return err
	}
	kc := &kafka.Client{Addr: kafka.TCP(kafkaAddr), Timeout: 20 * time.Second, Transport: &kafka.Transport{TLS: tlsc, SASL: mech}}
	var topics []kafka.TopicConfig
	for _, s := range []string{"frames.raw", "frames", "detections", "detections.shadow", "dlq", "frames.events", "devices"} {
		topics = append(topics, kafka.TopicConfig{Topic: prefix + "." + s, NumPartitions: 3, ReplicationFactor: 1})
	}
	if _, err := kc.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: topics}); err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var ups []kafka.UserScramCredentialsUpsertion
	var acls []kafka.ACLEntry
	allow := func(user string, rt kafka.ResourceType, name string, pt kafka.PatternType, op kafka.ACLOperationType) {
		acls = append(acls, kafka.ACLEntry{ResourceType: rt, ResourceName: name, ResourcePatternType: pt, Principal: "User:" + user,
			Host: "*", Operation: op, PermissionType: kafka.ACLPermissionTypeAllow})
	}
	for _, r := range append(rights, serviceRights{name: "producer", write: []string{"frames.raw"}}) {
		pw, err := secret(dir, r.name+"-kafka")
		if err != nil {
			return err
		}
		salt := make([]byte, 16)
		rand.Read(salt)
		ups = append(ups, kafka.UserScramCredentialsUpsertion{Name: r.name, Mechanism: kafka.ScramMechanismSha512, Iterations: 8192, Salt: salt, SaltedPassword: scramSalted([]byte(pw), salt, 8192)})
		for _, t := range r.read {
			allow(r.name, kafka.ResourceTypeTopic, prefix+"."+t, kafka.PatternTypeLiteral, kafka.ACLOperationTypeRead)
		}
		for _, t := range r.write {
			allow(r.name, kafka.ResourceTypeTopic, prefix+"."+t, kafka.PatternTypeLiteral, kafka.ACLOperationTypeWrite)
		}
		if len(r.read) > 0 {
			allow(r.name, kafka.ResourceTypeGroup, "streamdet-"+r.name, kafka.PatternTypePrefixed, kafka.ACLOperationTypeRead)
		}
	}
	resp, err := kc.AlterUserScramCredentials(ctx, &kafka.AlterUserScramCredentialsRequest{Upsertions: ups})
	if err != nil {
		return fmt.Errorf("SCRAM users: %w", err)
	}
	for _, r := range resp.Results {
		if r.Error != nil {
			return fmt.Errorf("SCRAM user %s: %w", r.User, r.Error)
		}
	}
	aresp, err := kc.CreateACLs(ctx, &kafka.CreateACLsRequest{ACLs: acls})
	if err != nil {
		return fmt.Errorf("ACLs: %w", err)
	}
	if err := errors.Join(aresp.Errors...); err != nil {
		return fmt.Errorf("ACLs: %w", err)
	}

	// MinIO, as root.
	rootUser, _ := secret(dir, "minio-root-user")
	rootPW, err := secret(dir, "minio-root")
	if err != nil {
		return err
	}
	tr := &http.Transport{TLSClientConfig: tlsc}
	mc, err := minio.New(minioAddr, &minio.Options{Creds: credentials.NewStaticV4(rootUser, rootPW, ""), Secure: true, Transport: tr, Region: "us-east-1"})
	if err != nil {
		return err
	}
	for _, b := range []string{"frames", "detections", "annotated", "models", "deadletters", "uploads"} {
		if err := mc.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	adm, err := madmin.NewWithOptions(minioAddr, &madmin.Options{Creds: credentials.NewStaticV4(rootUser, rootPW, ""), Secure: true, Transport: tr})
	if err != nil {
		return err
	}
	for _, r := range rights {
		var stmts []map[string]any
		for res, actions := range r.s3 {
			stmts = append(stmts, map[string]any{"Effect": "Allow", "Action": actions, "Resource": []string{"arn:aws:s3:::" + res}})
		}
		doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": stmts})
		if err := adm.AddCannedPolicy(ctx, "streamdet-"+r.name, doc); err != nil {
			return fmt.Errorf("policy %s: %w", r.name, err)
		}
		pw, err := secret(dir, r.name+"-minio")
		if err != nil {
			return err
		}
		if err := adm.AddUser(ctx, "streamdet-"+r.name, pw); err != nil {
			return fmt.Errorf("MinIO user %s: %w", r.name, err)
		}
		if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{"streamdet-" + r.name}, User: "streamdet-" + r.name}); err != nil {
			return fmt.Errorf("attach policy %s: %w", r.name, err)
		}
	}

	// Each service's environment: endpoints, TLS, its own credentials (by file).
	for _, r := range append(rights, serviceRights{name: "admin"}, serviceRights{name: "producer"}) {
		s := filepath.Join(dir, "secrets")
		minioUser := "streamdet-" + r.name
		if r.name == "admin" || r.name == "producer" {
			minioUser = rootUser
		}
		minioSecret := filepath.Join(s, r.name+"-minio")
		if r.name == "admin" || r.name == "producer" {
			minioSecret = filepath.Join(s, "minio-root")
		}
		lines := []string{
			"STREAMDET_KAFKA_BROKERS=" + kafkaAddr, "STREAMDET_TOPIC_PREFIX=" + prefix,
			"STREAMDET_KAFKA_TLS=true", "STREAMDET_KAFKA_TLS_CA_FILE=" + filepath.Join(dir, "ca.pem"),
			"STREAMDET_KAFKA_SASL_MECHANISM=scram-sha-512", "STREAMDET_KAFKA_SASL_USERNAME=" + r.name,
			"STREAMDET_KAFKA_SASL_PASSWORD_FILE=" + filepath.Join(s, r.name+"-kafka"),
			"STREAMDET_MINIO_ENDPOINT=" + minioAddr, "STREAMDET_MINIO_TLS=true", "STREAMDET_MINIO_TLS_CA_FILE=" + filepath.Join(dir, "ca.pem"),
			"STREAMDET_MINIO_ACCESS_KEY=" + minioUser, "STREAMDET_MINIO_SECRET_KEY_FILE=" + minioSecret,
			"STREAMDET_REDIS_ADDR=" + redisAddr, "STREAMDET_REDIS_TLS=true", "STREAMDET_REDIS_TLS_CA_FILE=" + filepath.Join(dir, "ca.pem"),
			"STREAMDET_REDIS_USERNAME=" + r.name, "STREAMDET_REDIS_PASSWORD_FILE=" + filepath.Join(s, r.name+"-redis"),
		}
		if err := os.WriteFile(filepath.Join(dir, r.name+".env"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}
