package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ambit-authz/ambit/tuple"
)

// ZedTokens and cursors are opaque to clients: URL-safe base64 (no padding)
// of a small versioned binary encoding. Every one carries an 8-byte
// fingerprint of the cluster id, so a token from another cluster is refused
// instead of being silently misread as a revision of this one.
//
//	zedtoken = 0x01 cluster:8 revision:uvarint [delivered:uvarint]
//	cursor   = 0x01 kind:byte cluster:8 revision:uvarint request:8 position
//	position = offset:uvarint            (read, export)
//	         | after:uvarint-len bytes   (lookup-resources, lookup-subjects, resource-access)
//
// request is a fingerprint of the request a cursor was issued for (the
// filter, permission, subject ...), so a cursor cannot resume a different
// query. Revision 0 is valid ("before anything").
//
// delivered (present and non-zero) marks a Watch response that carries part
// of a revision too large for one message: the first delivered updates of
// revision have been sent. Watch resumes from it with the rest of that
// revision; as a consistency it stands for revision-1, the last revision the
// client has seen whole.
const tokenVersion = 1

// Cursor kinds: which RPC issued a cursor.
type cursorKind byte

const (
	cursorRead cursorKind = iota + 1
	cursorExport
	cursorLookupResources
	cursorLookupSubjects
	cursorResourceAccess // ambit.v1 AccessService.ResourceAccess
)

func (k cursorKind) String() string {
	switch k {
	case cursorRead:
		return "ReadRelationships"
	case cursorExport:
		return "ExportBulkRelationships"
	case cursorLookupResources:
		return "LookupResources"
	case cursorLookupSubjects:
		return "LookupSubjects"
	case cursorResourceAccess:
		return "ResourceAccess"
	}
	return fmt.Sprintf("unknown (%d)", byte(k))
}

// tokens encodes and decodes ZedTokens and cursors for one cluster.
type tokens struct {
	cluster [8]byte
	// last is the token of the latest revision encoded, shared by the
	// copies of one newTokens (every answer at a revision carries it);
	// nil encodes every time.
	last *atomic.Pointer[revToken]
}

type revToken struct {
	rev   tuple.Revision
	token string
}

func newTokens(clusterID string) tokens {
	sum := sha256.Sum256([]byte("ambit-cluster:" + clusterID))
	t := tokens{last: new(atomic.Pointer[revToken])}
	copy(t.cluster[:], sum[:8])
	return t
}

var b64 = base64.RawURLEncoding

// errToken is wrapped by every token and cursor decoding failure; the API
// maps it to InvalidArgument.
var errToken = errors.New("invalid token")

// zedToken returns the ZedToken of rev.
func (t tokens) zedToken(rev tuple.Revision) *v1.ZedToken {
	if t.last != nil {
		if l := t.last.Load(); l != nil && l.rev == rev {
			return &v1.ZedToken{Token: l.token}
		}
	}
	b := make([]byte, 0, 1+8+binary.MaxVarintLen64)
	b = append(b, tokenVersion)
	b = append(b, t.cluster[:]...)
	b = binary.AppendUvarint(b, uint64(rev))
	tok := b64.EncodeToString(b)
	if t.last != nil {
		t.last.Store(&revToken{rev: rev, token: tok})
	}
	return &v1.ZedToken{Token: tok}
}

// partialToken returns the ZedToken of a Watch response that ends after the
// first delivered updates of rev (delivered > 0).
func (t tokens) partialToken(rev tuple.Revision, delivered int) *v1.ZedToken {
	b := make([]byte, 0, 1+8+2*binary.MaxVarintLen64)
	b = append(b, tokenVersion)
	b = append(b, t.cluster[:]...)
	b = binary.AppendUvarint(b, uint64(rev))
	b = binary.AppendUvarint(b, uint64(delivered))
	return &v1.ZedToken{Token: b64.EncodeToString(b)}
}

// revision decodes a ZedToken; what names the field for error messages. A
// token from the middle of a revision (see partialToken) stands for the
// revision before it.
func (t tokens) revision(z *v1.ZedToken, what string) (tuple.Revision, error) {
	rev, delivered, err := t.position(z, what)
	if err == nil && delivered > 0 {
		rev--
	}
	return rev, err
}

// position decodes a ZedToken into its revision and, for a token from the
// middle of a revision, how many of its updates were delivered (else 0).
func (t tokens) position(z *v1.ZedToken, what string) (tuple.Revision, uint64, error) {
	if z == nil || z.GetToken() == "" {
		return 0, 0, fmt.Errorf("%w: %s: the ZedToken is empty", errToken, what)
	}
	b, err := t.header(z.GetToken(), what, "ZedToken")
	if err != nil {
		return 0, 0, err
	}
	rev, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, fmt.Errorf("%w: %s: malformed ZedToken (bad revision encoding)", errToken, what)
	}
	b = b[n:]
	if len(b) == 0 {
		return tuple.Revision(rev), 0, nil
	}
	delivered, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) || delivered == 0 || rev == 0 {
		return 0, 0, fmt.Errorf("%w: %s: malformed ZedToken (bad position encoding)", errToken, what)
	}
	return tuple.Revision(rev), delivered, nil
}

// header decodes a ZedToken's base64, checks the version and the cluster
// and returns the rest. A cursor's kind byte sits between version and
// cluster: decodeCursor calls checkHeader with cursor set, which skips it,
// and checks the kind itself.
func (t tokens) header(s, what, noun string) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: malformed %s (not URL-safe base64: %v)", errToken, what, noun, err)
	}
	return t.checkHeader(b, what, noun, false)
}

func (t tokens) checkHeader(b []byte, what, noun string, cursor bool) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: %s: malformed %s (empty)", errToken, what, noun)
	}
	if b[0] != tokenVersion {
		return nil, fmt.Errorf("%w: %s: %s version %d is not supported (this server issues version %d); was it issued by another system?", errToken, what, noun, b[0], tokenVersion)
	}
	b = b[1:]
	if cursor {
		if len(b) < 1 {
			return nil, fmt.Errorf("%w: %s: malformed %s (truncated)", errToken, what, noun)
		}
		b = b[1:] // kind, checked by the caller
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: %s: malformed %s (truncated)", errToken, what, noun)
	}
	if !bytes.Equal(b[:8], t.cluster[:]) {
		return nil, fmt.Errorf("%w: %s: the %s was issued by a different cluster (token cluster %x, this cluster %x)", errToken, what, noun, b[:8], t.cluster[:])
	}
	return b[8:], nil
}

// cursor is a decoded pagination cursor.
type cursor struct {
	kind    cursorKind
	rev     tuple.Revision
	request [8]byte
	offset  uint64 // read, export
	after   string // lookups
}

func (t tokens) encodeCursor(c cursor) *v1.Cursor {
	var buf [128]byte // one per result of a lookup: on the stack unless after is long
	b := append(buf[:0], tokenVersion, byte(c.kind))
	b = append(b, t.cluster[:]...)
	b = binary.AppendUvarint(b, uint64(c.rev))
	b = append(b, c.request[:]...)
	switch c.kind {
	case cursorLookupResources, cursorLookupSubjects, cursorResourceAccess:
		b = binary.AppendUvarint(b, uint64(len(c.after)))
		b = append(b, c.after...)
	default:
		b = binary.AppendUvarint(b, c.offset)
	}
	return &v1.Cursor{Token: b64.EncodeToString(b)}
}

// errCursor is wrapped, beside errToken, by every cursor decoding failure
// (cursorError): SpiceDB's INVALID_CURSOR reason.
var errCursor = errors.New("invalid cursor")

// cursorError marks err as a cursor's, keeping its message.
type cursorError struct{ error }

func (e cursorError) Unwrap() []error { return []error{e.error, errCursor} }

// decodeCursor decodes a cursor issued by kind for the request fingerprint
// req; a failure is a cursorError.
func (t tokens) decodeCursor(pb *v1.Cursor, kind cursorKind, req [8]byte) (_ cursor, err error) {
	defer func() {
		if err != nil {
			err = cursorError{err}
		}
	}()
	const what = "optional_cursor"
	raw, err := b64.DecodeString(pb.GetToken())
	if err != nil {
		return cursor{}, fmt.Errorf("%w: %s: malformed cursor (not URL-safe base64: %v)", errToken, what, err)
	}
	b, err := t.checkHeader(raw, what, "cursor", true)
	if err != nil {
		return cursor{}, err
	}
	if k := cursorKind(raw[1]); k != kind {
		return cursor{}, fmt.Errorf("%w: %s: the cursor was issued by %s, not %s", errToken, what, k, kind)
	}
	c := cursor{kind: kind}
	rev, n := binary.Uvarint(b)
	if n <= 0 || len(b[n:]) < 8 {
		return cursor{}, fmt.Errorf("%w: %s: malformed cursor (truncated)", errToken, what)
	}
	c.rev = tuple.Revision(rev)
	b = b[n:]
	copy(c.request[:], b[:8])
	b = b[8:]
	if c.request != req {
		return cursor{}, fmt.Errorf("%w: %s: the cursor belongs to a different request (resend the request that produced it, with the same filter, permission and subject)", errToken, what)
	}
	switch kind {
	case cursorLookupResources, cursorLookupSubjects, cursorResourceAccess:
		l, n := binary.Uvarint(b)
		if n <= 0 || uint64(len(b[n:])) != l {
			return cursor{}, fmt.Errorf("%w: %s: malformed cursor (bad position)", errToken, what)
		}
		c.after = string(b[n:])
	default:
		off, n := binary.Uvarint(b)
		if n <= 0 || n != len(b) {
			return cursor{}, fmt.Errorf("%w: %s: malformed cursor (bad position)", errToken, what)
		}
		c.offset = off
	}
	return c, nil
}

// fingerprint is a stable hash of the messages that define a paginated
// query; a cursor remembers it.
func fingerprint(msgs ...proto.Message) [8]byte {
	h := sha256.New()
	for _, m := range msgs {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ZedTokenRevision is the revision a ZedToken of cluster clusterID stands
// for, for front ends that show it (the web console's replication lag).
func ZedTokenRevision(clusterID string, z *v1.ZedToken) (tuple.Revision, error) {
	return newTokens(clusterID).revision(z, "ZedToken")
}
