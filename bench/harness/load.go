package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/bench/workload"
	"github.com/ambit-authz/ambit/internal/v1pb"
)

// LoadResult is the outcome of Load.
type LoadResult struct {
	Endpoint      string        `json:"endpoint"`
	Workload      string        `json:"workload"`
	Relationships int64         `json:"relationships"`
	Method        string        `json:"method"` // ImportBulkRelationships or WriteRelationships
	Schema        time.Duration `json:"schema_ns"`
	Duration      time.Duration `json:"import_ns"`
	PerSecond     float64       `json:"relationships_per_second"`
}

// LoadOptions tune Load.
type LoadOptions struct {
	// Batch is relationships per message; default 1000 (SpiceDB's write limit).
	Batch int
	// Progress, when not nil, receives a progress line every second.
	Progress io.Writer
}

// Load writes the workload's schema, then bulk-imports its relationships
// with ImportBulkRelationships, falling back to WriteRelationships (TOUCH,
// Batch per call) when the server does not implement it. Any error aborts.
func Load(ctx context.Context, c *Client, w *workload.Workload, o LoadOptions) (*LoadResult, error) {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	res := &LoadResult{Endpoint: c.Endpoint, Workload: w.String(), Method: "ImportBulkRelationships"}
	start := time.Now()
	if _, err := c.Schema.WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: w.Schema()}); err != nil {
		return nil, fmt.Errorf("harness: write schema to %s: %w", c.Endpoint, err)
	}
	res.Schema = time.Since(start)
	start = time.Now()
	var sent atomic.Int64
	stop := progress(o.Progress, func(el time.Duration) string {
		return fmt.Sprintf("load %s: %d relationships sent in %.0fs", w, sent.Load(), el.Seconds())
	})
	err := importBulk(ctx, c, w, o.Batch, &sent)
	if status.Code(err) == codes.Unimplemented {
		res.Method = "WriteRelationships"
		sent.Store(0)
		err = writeAll(ctx, c, w, o.Batch, &sent)
	}
	stop()
	res.Relationships = sent.Load()
	if err != nil {
		return nil, fmt.Errorf("harness: load %s into %s after %d relationships: %w", w, c.Endpoint, res.Relationships, err)
	}
	res.Duration = time.Since(start)
	res.PerSecond = float64(res.Relationships) / res.Duration.Seconds()
	return res, nil
}

// batches yields the workload's relationships converted, n at a time.
func batches(w *workload.Workload, n int, fn func([]*v1.Relationship) error) error {
	batch := make([]*v1.Relationship, 0, n)
	for r := range w.Relationships() {
		pr, err := v1pb.RelationshipToV1(r)
		if err != nil {
			return err
		}
		if batch = append(batch, pr); len(batch) == n {
			if err := fn(batch); err != nil {
				return err
			}
			batch = make([]*v1.Relationship, 0, n)
		}
	}
	if len(batch) > 0 {
		return fn(batch)
	}
	return nil
}

// importBulk streams every relationship; sent counts those the server
// confirmed (all of them, or none).
func importBulk(ctx context.Context, c *Client, w *workload.Workload, n int, sent *atomic.Int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Permissions.ImportBulkRelationships(ctx)
	if err != nil {
		return err
	}
	pending := int64(0)
	err = batches(w, n, func(b []*v1.Relationship) error {
		if err := stream.Send(&v1.ImportBulkRelationshipsRequest{Relationships: b}); err != nil {
			return err
		}
		pending += int64(len(b))
		return nil
	})
	if errors.Is(err, io.EOF) {
		err = nil // the server ended the stream; CloseAndRecv has its status
	}
	if err != nil {
		return err
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return err
	}
	if resp.GetNumLoaded() != uint64(pending) {
		return fmt.Errorf("server loaded %d relationships, %d were sent", resp.GetNumLoaded(), pending)
	}
	sent.Store(pending)
	return nil
}

func writeAll(ctx context.Context, c *Client, w *workload.Workload, n int, sent *atomic.Int64) error {
	return batches(w, n, func(b []*v1.Relationship) error {
		ups := make([]*v1.RelationshipUpdate, len(b))
		for i, r := range b {
			ups[i] = &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: r}
		}
		if _, err := c.Permissions.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: ups}); err != nil {
			return err
		}
		sent.Add(int64(len(b)))
		return nil
	})
}
