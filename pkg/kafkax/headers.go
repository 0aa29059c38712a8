package kafkax

import (
	"github.com/segmentio/kafka-go"
)

// Headers adapts a message's headers to OpenTelemetry's TextMapCarrier, so that trace context
// (traceparent, tracestate) travels with every message.
type Headers struct{ H *[]kafka.Header }

// Get returns the first value of key.
func (h Headers) Get(key string) string {
	for _, x := range *h.H {
		if x.Key == key {
			return string(x.Value)
		}
	}
	return ""
}

// Set replaces every value of key with one.
func (h Headers) Set(key, value string) {
	out := (*h.H)[:0]
	for _, x := range *h.H {
		if x.Key != key {
			out = append(out, x)
		}
	}
	*h.H = append(out, kafka.Header{Key: key, Value: []byte(value)})
}

// Keys lists the header keys.
func (h Headers) Keys() []string {
	keys := make([]string, 0, len(*h.H))
	for _, x := range *h.H {
		keys = append(keys, x.Key)
	}
	return keys
}

// Header returns the value of key in hs and whether it is there.
func Header(hs []kafka.Header, key string) (string, bool) {
	for _, x := range hs {
		if x.Key == key {
			return string(x.Value), true
		}
	}
	return "", false
}
