// Package envconf reads service configuration from environment variables: typed getters with
// documented defaults that record every malformed value, so a service can refuse to start with
// one message naming each bad variable. Secrets may come from files (VAR_FILE), so that they
// never need to appear in a process listing or a flag.
package envconf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Env reads variables and collects parse errors. The zero value is not usable; use OS or Map.
type Env struct {
	lookup func(string) (string, bool)
	errs   *[]error
	keys   *[]string
}

// OS reads the process environment.
func OS() Env { return Env{lookup: os.LookupEnv, errs: new([]error), keys: new([]string)} }

// Map reads from a map, for tests.
func Map(m map[string]string) Env {
	return Env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }, errs: new([]error), keys: new([]string)}
}

// Keys lists every variable asked for so far, in order (a test compares them with the
// documentation).
func (e Env) Keys() []string { return append([]string(nil), *e.keys...) }

func (e Env) get(key string) (string, bool) {
	*e.keys = append(*e.keys, key)
	v, ok := e.lookup(key)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

func (e Env) fail(key, val, want string) {
	*e.errs = append(*e.errs, fmt.Errorf("%s=%q: want %s", key, val, want))
}

// Err joins every malformed value seen so far.
func (e Env) Err() error { return errors.Join(*e.errs...) }

// String returns the value or def.
func (e Env) String(key, def string) string {
	if v, ok := e.get(key); ok {
		return v
	}
	return def
}

// Secret returns the value of key, or the trimmed contents of the file named by key_FILE.
func (e Env) Secret(key string) string {
	if v, ok := e.get(key); ok {
		return v
	}
	if f, ok := e.get(key + "_FILE"); ok {
		b, err := os.ReadFile(f)
		if err != nil {
			*e.errs = append(*e.errs, fmt.Errorf("%s_FILE: %w", key, err))
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return ""
}

// Int returns the value or def.
func (e Env) Int(key string, def int) int {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(key, v, "an integer")
		return def
	}
	return n
}

// Float returns the value or def.
func (e Env) Float(key string, def float64) float64 {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.fail(key, v, "a number")
		return def
	}
	return f
}

// Bool returns the value or def.
func (e Env) Bool(key string, def bool) bool {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(key, v, "true or false")
		return def
	}
	return b
}

// Duration returns the value (Go syntax: 500ms, 2s, 1m) or def.
func (e Env) Duration(key string, def time.Duration) time.Duration {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.fail(key, v, "a duration such as 500ms or 2s")
		return def
	}
	return d
}

// List returns the comma-separated values or def.
func (e Env) List(key string, def []string) []string {
	v, ok := e.get(key)
	if !ok {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
