package schema

import (
	"crypto/sha256"
	"encoding/hex"
)

// Digest identifies a schema text: the first 16 bytes of its SHA-256. It is
// the one schema identity in ambit: Schema.Hash is the Digest of the
// canonical source (the engine's cache keys), and raft's write commands
// carry the Digest of the stored text (raft.SchemaHash) so the state machine
// refuses a write validated against another schema. The zero value means
// "none".
type Digest [16]byte

// DigestOf returns the Digest of a schema text, byte for byte as given.
func DigestOf(text string) Digest {
	sum := sha256.Sum256([]byte(text))
	return Digest(sum[:16])
}

func (d Digest) String() string { return hex.EncodeToString(d[:]) }
