package apitoken

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	tok, err := New()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 20, 0, 0, 123, time.UTC)
	for _, r := range []Record{
		{ID: tok.ID, Name: "ci", Scopes: []Scope{Check, Read}, Salt: tok.Salt, Hash: tok.Hash, Created: now},
		{ID: tok.ID, Name: "app ü", Scopes: []Scope{Admin}, Salt: tok.Salt, Hash: tok.Hash, Created: now, Expires: now.Add(time.Hour), Revoked: now.Add(time.Minute)},
	} {
		got, err := DecodeRecord(r.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
}

func TestDecodeRecordBad(t *testing.T) {
	good := Record{ID: "0123456789abcdef", Name: "x", Scopes: []Scope{Check}, Salt: []byte{1}, Hash: []byte{2}}.Encode()
	bad := map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"scope":     Record{ID: "a", Scopes: []Scope{"root"}}.Encode(),
		"long":      {1, 0xff, 0xff, 0x03},
	}
	for name, b := range bad {
		if _, err := DecodeRecord(b); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: %v, want ErrBadRecord", name, err)
		}
	}
}

func TestRecordCheck(t *testing.T) {
	tok, _ := New()
	_, secret, _ := Parse(tok.Text)
	other, _ := New()
	_, otherSecret, _ := Parse(other.Text)
	now := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	base := Record{ID: tok.ID, Name: "ci", Scopes: []Scope{Check}, Salt: tok.Salt, Hash: tok.Hash, Created: now.Add(-time.Hour)}
	expired, revoked, later := base, base, base
	expired.Expires = now
	revoked.Revoked = now.Add(-time.Second)
	later.Expires = now.Add(time.Second)
	cases := []struct {
		name   string
		r      Record
		secret string
		want   error
	}{
		{"valid", base, secret, nil},
		{"valid until later", later, secret, nil},
		{"wrong secret", base, otherSecret, ErrMismatch},
		{"expired", expired, secret, ErrExpired},
		{"revoked", revoked, secret, ErrRevoked},
		{"revoked, wrong secret", revoked, otherSecret, ErrMismatch},
	}
	for _, c := range cases {
		err := c.r.Check(c.secret, now)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, n := range []string{"ci", "the app", "x"} {
		if err := ValidateName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "a\nb", string(make([]byte, 129))} {
		if err := ValidateName(n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
}
