package raft

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Every random secret made the ways the README suggests passes (a rule of
// "16 distinct bytes" refused about 1 in 40 `openssl rand -hex 32` secrets,
// which hold at most 16 distinct characters); uniform or short ones do not.
func TestCheckClusterSecret(t *testing.T) {
	for i := range 2000 {
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]string{"raw": string(raw), "hex": hex.EncodeToString(raw), "base64": base64.StdEncoding.EncodeToString(raw)} {
			if err := CheckClusterSecret([]byte(s)); err != nil {
				t.Fatalf("random %s secret %d refused: %v", name, i, err)
			}
		}
	}
	for _, s := range []string{
		strings.Repeat("a", 64),
		strings.Repeat("ab", 32),
		strings.Repeat("password", 4),
		"short",
	} {
		if err := CheckClusterSecret([]byte(s)); !errors.Is(err, ErrBadConfig) {
			t.Errorf("CheckClusterSecret(%q) = %v, want a refusal", s, err)
		}
	}
}
