//go:build integration

package objstore_test

import (
	"testing"

	"github.com/streamdet/streamdet/pkg/objstore"
	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationGet runs the Get contract against MinIO.
func TestIntegrationGet(t *testing.T) {
	st := testenv.Require(t)
	testGet(t, objstore.Config{Endpoint: st.MinIOEndpoint, AccessKey: st.MinIOAccessKey, SecretKey: st.MinIOSecretKey, Region: "us-east-1"})
}
