package gateway

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
)

// LoadTokens reads a token file: one "token system instance name" per
// line, fields separated by white space, the name being the rest of the
// line; system and instance may be "*". Blank lines and lines whose first
// non-blank character is '#' are ignored. A token listed twice, or a line
// that is not valid, is an error naming the line number, never the token.
// Keep the file readable by the gateway's user only (mode 0600).
func LoadTokens(path string) (map[string]Grant, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gateway: load tokens: %w", err)
	}
	defer f.Close()

	tokens := map[string]Grant{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 {
			return nil, fmt.Errorf("gateway: load tokens: %s line %d: want \"token system instance name\"", path, n)
		}
		tok := fields[0]
		g := Grant{System: fields[1], Instance: fields[2], Name: strings.Join(fields[3:], " ")}
		if err := validToken(tok); err != nil {
			return nil, fmt.Errorf("gateway: load tokens: %s line %d: %w", path, n, err)
		}
		if err := g.validate(); err != nil {
			return nil, fmt.Errorf("gateway: load tokens: %s line %d: %w", path, n, err)
		}
		if _, dup := tokens[tok]; dup {
			return nil, fmt.Errorf("gateway: load tokens: %s line %d: token listed twice", path, n)
		}
		tokens[tok] = g
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gateway: load tokens: read %s: %w", path, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("gateway: load tokens: %s lists no token", path)
	}
	return tokens, nil
}

// authenticator finds the grant of a bearer token in constant time: tokens
// are kept only as SHA-256 digests, and every digest is compared, so the
// time taken depends neither on which token matched nor on how much of a
// wrong token was right.
type authenticator struct {
	entries []authEntry
}

type authEntry struct {
	digest [sha256.Size]byte
	grant  Grant
}

func newAuthenticator(tokens map[string]Grant) *authenticator {
	a := &authenticator{entries: make([]authEntry, 0, len(tokens))}
	for tok, g := range tokens {
		a.entries = append(a.entries, authEntry{digest: sha256.Sum256([]byte(tok)), grant: g})
	}
	return a
}

// grant returns the grant of the token in an "Authorization: Bearer
// <token>" header value.
func (a *authenticator) grant(header string) (Grant, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Grant{}, false
	}
	d := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	found := -1
	for i := range a.entries {
		if subtle.ConstantTimeCompare(d[:], a.entries[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Grant{}, false
	}
	return a.entries[found].grant, true
}
