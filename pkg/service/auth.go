package service

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

// Auth modes of a data listener.
const (
	AuthToken = "token" // bearer tokens from a file (the default)
	AuthMTLS  = "mtls"  // client certificates signed by a configured CA
	AuthNone  = "none"  // nothing: must be chosen explicitly
)

// Principal is who a request was authenticated as.
type Principal struct {
	Name    string   // the token's name, or the client certificate's common name
	Streams []string // stream-id patterns (path.Match syntax, e.g. cam-*) this principal may use; "*" is all
}

// MayUse reports whether the principal may act on stream.
func (p *Principal) MayUse(stream string) bool {
	if p == nil {
		return false
	}
	for _, pat := range p.Streams {
		if ok, _ := path.Match(pat, stream); ok {
			return true
		}
	}
	return false
}

type principalKey struct{}

// PrincipalFrom returns the request's principal; with auth "none" it is an anonymous principal
// that may use every stream.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// MinTokenLen is the shortest token accepted in a tokens file.
const MinTokenLen = 16

type tokenEntry struct {
	sum       [sha256.Size]byte
	principal *Principal
}

// Tokens is a bearer-token file, re-read when it changes (checked at most once a second), so
// tokens are added and revoked without a restart. Each line: `name token [stream-pattern,...]`
// ('#' starts a comment); without patterns the token may use every stream. Tokens are compared
// as SHA-256 digests in constant time, against every entry.
type Tokens struct {
	file string
	now  func() time.Time

	mu      sync.Mutex
	entries []tokenEntry
	mtime   time.Time
	size    int64
	checked time.Time
	err     error
}

// LoadTokens reads a tokens file; it must exist and hold at least one valid token.
func LoadTokens(file string) (*Tokens, error) {
	t := &Tokens{file: file, now: time.Now}
	if err := t.reload(); err != nil {
		return nil, err
	}
	if len(t.entries) == 0 {
		return nil, fmt.Errorf("tokens file %s: no tokens", file)
	}
	return t, nil
}

// ParseTokens parses the tokens file format.
func ParseTokens(b []byte) ([]tokenEntry, error) {
	var out []tokenEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("line %d: want `name token [stream-pattern,...]`", n)
		}
		if len(f[1]) < MinTokenLen {
			return nil, fmt.Errorf("line %d: token of %q shorter than %d characters", n, f[0], MinTokenLen)
		}
		p := &Principal{Name: f[0], Streams: []string{"*"}}
		if len(f) == 3 {
			p.Streams = strings.Split(f[2], ",")
			for _, pat := range p.Streams {
				if _, err := path.Match(pat, ""); err != nil || pat == "" {
					return nil, fmt.Errorf("line %d: stream pattern %q: %v", n, pat, err)
				}
			}
		}
		out = append(out, tokenEntry{sum: sha256.Sum256([]byte(f[1])), principal: p})
	}
	return out, sc.Err()
}

func (t *Tokens) reload() error {
	st, err := os.Stat(t.file)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	if st.ModTime().Equal(t.mtime) && st.Size() == t.size && t.entries != nil {
		return nil
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	entries, err := ParseTokens(b)
	if err != nil {
		return fmt.Errorf("tokens file %s: %w", t.file, err)
	}
	t.entries, t.mtime, t.size = entries, st.ModTime(), st.Size()
	return nil
}

// Lookup returns the principal a token belongs to, or nil.
func (t *Tokens) Lookup(token string) *Principal {
	t.mu.Lock()
	if now := t.now(); now.Sub(t.checked) >= time.Second {
		t.checked = now
		// A file that became unreadable or invalid keeps the last good tokens (and is reported
		// by Err), so a half-written edit does not lock everyone out.
		t.err = t.reload()
	}
	entries := t.entries
	t.mu.Unlock()
	sum := sha256.Sum256([]byte(token))
	var found *Principal
	for _, e := range entries {
		if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
			found = e.principal
		}
	}
	return found
}

// Err is the last reload's error (nil when the file was read well).
func (t *Tokens) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// bearer extracts the token of an Authorization header: "Bearer <token>", or HTTP Basic with
// the token as the password (so that a browser can open the live view).
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	if _, pass, ok := r.BasicAuth(); ok {
		return pass
	}
	return ""
}

// ErrUnauthenticated: no or wrong credentials.
var ErrUnauthenticated = errors.New("unauthenticated")

// Authenticator authenticates requests to a data listener.
type Authenticator struct {
	Mode   string
	Tokens *Tokens // with AuthToken
}

// Wrap requires a principal for every request to h: 401 (with a Basic challenge, so browsers
// ask) when there is none.
func (a *Authenticator) Wrap(h http.Handler) http.Handler {
	if a == nil || a.Mode == AuthNone {
		anon := &Principal{Name: "anonymous", Streams: []string{"*"}}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, anon)))
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p *Principal
		switch a.Mode {
		case AuthToken:
			if tok := bearer(r); tok != "" {
				p = a.Tokens.Lookup(tok)
			}
		case AuthMTLS:
			if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
				p = &Principal{Name: r.TLS.VerifiedChains[0][0].Subject.CommonName, Streams: []string{"*"}}
			}
		}
		if p == nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="streamdet", charset="UTF-8"`)
			WriteError(w, http.StatusUnauthorized, "unauthenticated", "credentials missing or not valid")
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}
