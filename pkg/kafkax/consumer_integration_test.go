//go:build integration

package kafkax

import (
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/streamdet/streamdet/pkg/testenv"
)

// TestIntegrationConsumerSuite runs the consumer suite (consumer_suite_test.go) on the real broker.
func TestIntegrationConsumerSuite(t *testing.T) {
	st := testenv.Require(t)
	consumerSuite(t, backend{brokers: st.KafkaBrokers, topic: func(t *testing.T, partitions int) (string, *kafka.Client) {
		name := fmt.Sprintf("kafkax.suite.%d", time.Now().UnixNano())
		return name, testenv.Topics(t, st.KafkaBrokers, partitions, name)
	}})
}
