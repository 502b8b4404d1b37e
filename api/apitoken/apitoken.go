// Package apitoken holds the parts of ambit's managed API tokens that need
// no storage: the secret's format, its salted hash, scopes, and which scope
// each RPC needs.
//
// A token is "ambit_" + its id (16 hex digits) + "_" + its secret (43
// characters of unpadded base64url, 256 random bits). The id is not secret:
// it names the stored record (name, scopes, salt, hash, expiry), so a
// presented token is checked with one lookup and one constant-time
// comparison, and it is what logs and the audit log show (metrics label
// requests by the token's name instead). The secret is never stored: the
// record keeps SHA-256(salt || secret) with a random 16-byte salt; 256 bits
// of entropy make a slow hash unnecessary.
package apitoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Scope is a class of RPCs a token may call.
type Scope string

// The scopes, each naming what it allows.
const (
	// Check: Check, CheckBulk, Expand, the lookups, the effective-access
	// calls and AuthZEN.
	Check Scope = "check"
	// Read: ReadRelationships, ExportBulkRelationships, Watch, ReadSchema
	// and the schema reflection calls (ReflectSchema, ComputablePermissions,
	// DependentRelations, DiffSchema).
	Read Scope = "read"
	// Write: relationship writes, deletes and imports.
	Write Scope = "write"
	// Schema: WriteSchema.
	Schema Scope = "schema"
	// SCIM: the SCIM provisioning endpoints.
	SCIM Scope = "scim"
	// Admin: everything, including tokens and cluster membership.
	Admin Scope = "admin"
)

// Scopes lists every scope.
var Scopes = []Scope{Check, Read, Write, Schema, SCIM, Admin}

// ParseScopes reads a comma-separated scope list; an unknown name is an
// error naming it and the known ones.
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		sc := Scope(strings.ToLower(part))
		if !slices.Contains(Scopes, sc) {
			return nil, fmt.Errorf("%w: %q (scopes are check, read, write, schema, scim, admin)", ErrUnknownScope, part)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no scope given", ErrUnknownScope)
	}
	slices.Sort(out)
	return out, nil
}

// Allows reports whether a token holding scopes may call what needs need:
// admin allows everything.
func Allows(scopes []Scope, need Scope) bool {
	return slices.Contains(scopes, need) || slices.Contains(scopes, Admin)
}

// methodScopes maps each gRPC method of the public API to the scope it
// needs. A method missing here needs Admin (fail closed): a new RPC must be
// added before a narrower token can call it.
var methodScopes = map[string]Scope{
	"/authzed.api.v1.PermissionsService/CheckPermission":          Check,
	"/authzed.api.v1.PermissionsService/CheckBulkPermissions":     Check,
	"/authzed.api.v1.PermissionsService/ExpandPermissionTree":     Check,
	"/authzed.api.v1.PermissionsService/LookupResources":          Check,
	"/authzed.api.v1.PermissionsService/LookupSubjects":           Check,
	"/authzed.api.v1.PermissionsService/ReadRelationships":        Read,
	"/authzed.api.v1.PermissionsService/ExportBulkRelationships":  Read,
	"/authzed.api.v1.PermissionsService/WriteRelationships":       Write,
	"/authzed.api.v1.PermissionsService/DeleteRelationships":      Write,
	"/authzed.api.v1.PermissionsService/ImportBulkRelationships":  Write,
	"/authzed.api.v1.SchemaService/ReadSchema":                    Read,
	"/authzed.api.v1.SchemaService/WriteSchema":                   Schema,
	"/authzed.api.v1.SchemaService/ReflectSchema":                 Read,
	"/authzed.api.v1.SchemaService/ComputablePermissions":         Read,
	"/authzed.api.v1.SchemaService/DependentRelations":            Read,
	"/authzed.api.v1.SchemaService/DiffSchema":                    Read,
	"/authzed.api.v1.WatchService/Watch":                          Read,
	"/ambit.v1.AccessService/ResourceAccess":                      Check,
	"/ambit.v1.AccessService/SubjectPermissions":                  Check,
	"/ambit.v1.AccessService/Explain":                             Check,
	"/authzed.api.v1.ExperimentalService/BulkCheckPermission":     Check,
	"/authzed.api.v1.ExperimentalService/BulkExportRelationships": Read,
	"/authzed.api.v1.ExperimentalService/BulkImportRelationships": Write,
}

// MethodScope returns the scope a gRPC method needs.
func MethodScope(fullMethod string) Scope {
	if s, ok := methodScopes[fullMethod]; ok {
		return s
	}
	return Admin
}

// Errors of token parsing and checking.
var (
	ErrMalformed    = errors.New("apitoken: malformed token")
	ErrUnknownScope = errors.New("apitoken: unknown scope")
	ErrMismatch     = errors.New("apitoken: the token's secret does not match")
)

const (
	prefix    = "ambit_"
	idBytes   = 8
	keyBytes  = 32
	saltBytes = 16
)

// Issued is a new token: the text to hand to the client once, and what to
// store.
type Issued struct {
	Text string // shown once, never stored
	ID   string
	Salt []byte
	Hash []byte // SHA-256(salt || secret)
}

// New issues a token with a random id, secret and salt.
func New() (Issued, error) {
	buf := make([]byte, idBytes+keyBytes+saltBytes)
	if _, err := rand.Read(buf); err != nil {
		return Issued{}, err
	}
	id := hex.EncodeToString(buf[:idBytes])
	secret := base64.RawURLEncoding.EncodeToString(buf[idBytes : idBytes+keyBytes])
	salt := buf[idBytes+keyBytes:]
	return Issued{Text: prefix + id + "_" + secret, ID: id, Salt: salt, Hash: hash(salt, secret)}, nil
}

func hash(salt []byte, secret string) []byte {
	var buf [128]byte // salt and secret fit: no allocation on the request path
	in := append(append(buf[:0], salt...), secret...)
	sum := sha256.Sum256(in)
	return sum[:]
}

// LooksLikeToken reports whether a bearer credential has a managed token's
// shape (so that a preshared key is not looked up as one).
func LooksLikeToken(text string) bool { return strings.HasPrefix(text, prefix) }

// Parse splits a token's text into its id and secret.
func Parse(text string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok {
		return "", "", fmt.Errorf("%w: it does not start with %q", ErrMalformed, prefix)
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 2*idBytes || len(secret) != base64.RawURLEncoding.EncodedLen(keyBytes) {
		return "", "", fmt.Errorf("%w: want %s<16 hex digits>_<43 characters>", ErrMalformed, prefix)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", "", fmt.Errorf("%w: the id is not lowercase hex", ErrMalformed)
		}
	}
	for i := 0; i < len(secret); i++ {
		if c := secret[i]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", "", fmt.Errorf("%w: the secret is not base64url", ErrMalformed)
		}
	}
	// 43 characters carry 258 bits: the last one must leave the 2 extra
	// bits zero, as the encoder does (one text per secret).
	if strings.IndexByte(b64Last, secret[len(secret)-1]) < 0 {
		return "", "", fmt.Errorf("%w: the secret is not canonical base64url", ErrMalformed)
	}
	return id, secret, nil
}

// b64Last lists the base64url digits whose low 2 bits are zero.
const b64Last = "AEIMQUYcgkosw048"

// Verify checks a presented secret against a stored salt and hash in
// constant time.
func Verify(secret string, salt, stored []byte) error {
	if subtle.ConstantTimeCompare(hash(salt, secret), stored) != 1 {
		return ErrMismatch
	}
	return nil
}
