package harness

import (
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/ambit-authz/ambit/internal/v1pb"
)

// Consistency names a v1 consistency requirement in internal/v1pb's text
// form: minimize_latency (or latency), full, fresh:ZEDTOKEN or
// exact:ZEDTOKEN.
type Consistency string

const (
	MinimizeLatency Consistency = "minimize_latency"
	FullyConsistent Consistency = "full"
)

func (c Consistency) proto() (*v1.Consistency, error) {
	cons, err := v1pb.ParseConsistency(string(c))
	if err != nil {
		return nil, fmt.Errorf("harness: %w", err)
	}
	return cons, nil
}
