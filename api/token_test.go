package api

import (
	"encoding/binary"
	"errors"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/tuple"
)

// TestWatchTokenPositions: a token from the middle of a revision decodes to
// its position for Watch and to the revision before as a consistency; a
// malformed position is refused.
func TestWatchTokenPositions(t *testing.T) {
	tk := newTokens("c")
	for _, tc := range []struct {
		tok         *v1.ZedToken
		rev, asRead tuple.Revision
		delivered   uint64
	}{
		{tk.zedToken(7), 7, 7, 0},
		{tk.zedToken(0), 0, 0, 0},
		{tk.partialToken(7, 1), 7, 6, 1},
		{tk.partialToken(7, 5000), 7, 6, 5000},
	} {
		rev, delivered, err := tk.position(tc.tok, "t")
		if err != nil || rev != tc.rev || delivered != tc.delivered {
			t.Errorf("position(%s) = %d, %d, %v; want %d, %d", tc.tok.GetToken(), rev, delivered, err, tc.rev, tc.delivered)
		}
		if r, err := tk.revision(tc.tok, "t"); err != nil || r != tc.asRead {
			t.Errorf("revision(%s) = %d, %v; want %d", tc.tok.GetToken(), r, err, tc.asRead)
		}
	}
	raw := func(parts ...uint64) *v1.ZedToken {
		b := append([]byte{tokenVersion}, tk.cluster[:]...)
		for _, p := range parts {
			b = binary.AppendUvarint(b, p)
		}
		return &v1.ZedToken{Token: b64.EncodeToString(b)}
	}
	trailing := raw(7, 3)
	trailing.Token = b64.EncodeToString(append(mustDecode(t, trailing.Token), 0xff))
	for name, bad := range map[string]*v1.ZedToken{
		"zero delivered":     raw(7, 0),
		"partial of rev 0":   raw(0, 3),
		"bytes after":        raw(7, 3, 1),
		"truncated position": trailing,
	} {
		if _, _, err := tk.position(bad, "t"); !errors.Is(err, errToken) {
			t.Errorf("%s: position = %v, want an invalid-token error", name, err)
		}
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
