package apitoken

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Space is the record keyspace managed tokens live in (one record per
// token, keyed by its id).
const Space = "token"

// Record is what is stored of a token: never its secret.
type Record struct {
	ID      string
	Name    string
	Scopes  []Scope
	Salt    []byte
	Hash    []byte    // SHA-256(salt || secret)
	Created time.Time // stamped by the server that issued it
	Expires time.Time // zero: never
	Revoked time.Time // zero: not revoked
}

// Errors of records and of checking a presented token against one.
var (
	ErrBadRecord = errors.New("apitoken: undecodable token record")
	ErrExpired   = errors.New("apitoken: the token has expired")
	ErrRevoked   = errors.New("apitoken: the token was revoked")
)

// Limits of a record's fields.
const (
	MaxNameLen = 128
)

// ValidateName checks a token's name: 1 to 128 bytes, no ASCII
// control characters (it is shown in listings, logs and metrics).
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("a token name has 1 to %d bytes, not %d", MaxNameLen, len(name))
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("a token name may not contain control characters (%q)", name)
		}
	}
	return nil
}

// Check verifies a presented secret against the record at time now:
// ErrRevoked, ErrExpired or ErrMismatch, each wrapped with the token id.
// The secret is compared first, so that an expired or revoked token's
// state is told only to a holder of its secret.
func (r Record) Check(secret string, now time.Time) error {
	if err := Verify(secret, r.Salt, r.Hash); err != nil {
		return fmt.Errorf("token %s: %w", r.ID, err)
	}
	if !r.Revoked.IsZero() {
		return fmt.Errorf("%w: token %s (%q) was revoked at %s", ErrRevoked, r.ID, r.Name, r.Revoked.UTC().Format(time.RFC3339))
	}
	if !r.Expires.IsZero() && !now.Before(r.Expires) {
		return fmt.Errorf("%w: token %s (%q) expired at %s", ErrExpired, r.ID, r.Name, r.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// recordVersion is the first byte of an encoded record.
const recordVersion = 1

// Encode returns the record's stored form:
//
//	record = 0x01 id name scopes salt hash created expires revoked
//	id, name, salt, hash = uvarint-length bytes
//	scopes = uvarint-count (uvarint-length bytes)*
//	created, expires, revoked = varint Unix nanoseconds (0: zero time)
func (r Record) Encode() []byte {
	b := []byte{recordVersion}
	str := func(s []byte) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	tm := func(t time.Time) {
		var ns int64
		if !t.IsZero() {
			ns = t.UnixNano()
		}
		b = binary.AppendVarint(b, ns)
	}
	str([]byte(r.ID))
	str([]byte(r.Name))
	b = binary.AppendUvarint(b, uint64(len(r.Scopes)))
	for _, s := range r.Scopes {
		str([]byte(s))
	}
	str(r.Salt)
	str(r.Hash)
	tm(r.Created)
	tm(r.Expires)
	tm(r.Revoked)
	return b
}

// DecodeRecord reads a stored record; an unknown version, a truncated or
// over-long value, or an unknown scope is ErrBadRecord.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return Record{}, fmt.Errorf("%w: unknown version", ErrBadRecord)
	}
	d := recDecoder{b: b[1:]}
	var r Record
	r.ID = string(d.bytes())
	r.Name = string(d.bytes())
	n := d.uvarint()
	if n > uint64(len(Scopes)) {
		d.err = fmt.Errorf("%w: %d scopes", ErrBadRecord, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		s := Scope(d.bytes())
		if d.err == nil && !slices.Contains(Scopes, s) {
			d.err = fmt.Errorf("%w: unknown scope %q", ErrBadRecord, s)
		}
		r.Scopes = append(r.Scopes, s)
	}
	r.Salt = d.bytes()
	r.Hash = d.bytes()
	r.Created = d.time()
	r.Expires = d.time()
	r.Revoked = d.time()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrBadRecord, len(d.b))
	}
	if d.err != nil {
		return Record{}, d.err
	}
	return r, nil
}

type recDecoder struct {
	b   []byte
	err error
}

func (d *recDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated", ErrBadRecord)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recDecoder) bytes() []byte {
	l := d.uvarint()
	if d.err != nil {
		return nil
	}
	if l > uint64(len(d.b)) {
		d.err = fmt.Errorf("%w: truncated", ErrBadRecord)
		return nil
	}
	out := slices.Clone(d.b[:l])
	d.b = d.b[l:]
	return out
}

func (d *recDecoder) time() time.Time {
	if d.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: truncated", ErrBadRecord)
		return time.Time{}
	}
	d.b = d.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}
