//go:build integration

package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/registry"
	"github.com/streamdet/streamdet/pkg/routing"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationRegistryTrust: against MinIO and Redis, two concurrent pushes of one version
// cannot both succeed, and a model replaced in the bucket together with its manifest is refused
// because the digest recorded at push time (in Redis) does not match.
func TestIntegrationRegistryTrust(t *testing.T) {
	st := testenv.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := objstore.New(objstore.Config{Endpoint: st.MinIOEndpoint, AccessKey: st.MinIOAccessKey, SecretKey: st.MinIOSecretKey, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	routes, err := routing.NewStore(routing.RedisConfig{Addr: st.RedisAddr, Password: st.RedisPassword, KeyPrefix: fmt.Sprintf("regtest%d", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	defer routes.Close()
	bucket := fmt.Sprintf("regtest-%d", time.Now().UnixNano()%1e9)
	reg, err := registry.New(ctx, store, bucket)
	if err != nil {
		t.Fatal(err)
	}
	reg = reg.WithLedger(routes)

	// Two pushes of version 1 race, with different bytes: exactly one wins, and what is served
	// is what the winner pushed.
	models := [][]byte{bytes.Repeat([]byte("A"), 1<<20), bytes.Repeat([]byte("B"), 1<<20)}
	for round := 0; round < 5; round++ {
		version := fmt.Sprint(round + 1)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range models {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, errs[i] = reg.Push(ctx, registry.Manifest{Name: "m", Version: version}, models[i])
			}(i)
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			if err == nil {
				if won >= 0 {
					t.Fatalf("round %d: both pushes of one version succeeded", round)
				}
				won = i
			} else if !errors.Is(err, registry.ErrExists) {
				t.Fatalf("round %d: push failed with %v, want ErrExists", round, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither push succeeded: %v", round, errs)
		}
		b, _, err := reg.Fetch(ctx, "m", version)
		if err != nil || !bytes.Equal(b, models[won]) {
			t.Fatalf("round %d: fetch after the race: %v (winner %d)", round, err, won)
		}
	}

	// Replace model and manifest behind the registry's back, consistently with each other.
	if _, err := reg.Push(ctx, registry.Manifest{Name: "m", Version: "9"}, models[0]); err != nil {
		t.Fatal(err)
	}
	evil := bytes.Repeat([]byte("E"), 1<<20)
	if err := store.Put(ctx, bucket, "m/9/model.onnx", evil, ""); err != nil {
		t.Fatal(err)
	}
	man, err := reg.Manifest(ctx, "m", "9")
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := registry.New(ctx, store, bucket) // no ledger: what a push of the evil pair would write
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Client().RemoveObject(ctx, bucket, "m/9/manifest.json", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := store.Client().RemoveObject(ctx, bucket, "m/9/model.onnx", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	man.SHA256 = ""
	if _, err := unsigned.Push(ctx, man, evil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Fetch(ctx, "m", "9"); !errors.Is(err, registry.ErrDigest) {
		t.Fatalf("model and manifest replaced together: fetch says %v, want ErrDigest", err)
	}
	// A version pushed without the ledger is not trusted.
	if _, err := unsigned.Push(ctx, registry.Manifest{Name: "m", Version: "10"}, models[1]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Fetch(ctx, "m", "10"); !errors.Is(err, registry.ErrUntrusted) {
		t.Fatalf("version with no recorded digest: %v, want ErrUntrusted", err)
	}
}
