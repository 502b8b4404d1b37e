package console

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// A ResourceExhausted the server sends because it is busy (with RetryInfo)
// is 429 with Retry-After; one that says the request is over a limit is 400,
// since retrying it unchanged cannot succeed.
func TestStatusOfResourceExhausted(t *testing.T) {
	busy, err := status.New(codes.ResourceExhausted, "no heavy slot").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		err   error
		code  int
		retry string
	}{
		{"busy", busy.Err(), http.StatusTooManyRequests, "1"},
		{"over a limit", status.Error(codes.ResourceExhausted, "more than 100000 results"), http.StatusBadRequest, ""},
		{"invalid", status.Error(codes.InvalidArgument, "bad"), http.StatusBadRequest, ""},
		{"plain error", errors.New("boom"), http.StatusInternalServerError, ""},
	} {
		w := httptest.NewRecorder()
		writeError(w, tc.err, statusOf(tc.err))
		if w.Code != tc.code || w.Header().Get("Retry-After") != tc.retry {
			t.Errorf("%s: %d, Retry-After %q; want %d, %q", tc.name, w.Code, w.Header().Get("Retry-After"), tc.code, tc.retry)
		}
	}
}
