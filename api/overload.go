package api

import (
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// A call refused because the server is busy (its heavy-call slots taken,
// its heap above the high-water mark, its Watch streams at --max-watches)
// is ResourceExhausted, as is a call that asks for more than a limit
// allows; only the first is worth retrying as it is. It carries a
// google.rpc.RetryInfo detail, which tells the two apart: the AuthZEN HTTP
// binding and the console answer it 429 Too Many Requests with Retry-After
// (the other stays 400: the request must change), and gRPC clients that read RetryInfo
// know to back off and retry. (SCIM answers its own refusals 503 with
// Retry-After; see admitSCIMScan.)

// overloadRetry is the delay a refused call is told to wait before its
// retry: about how long a heavy call takes to finish and free its slot.
const overloadRetry = time.Second

// overloadedf is the error of a call refused because the server is busy.
func overloadedf(format string, args ...any) error {
	st := status.Newf(codes.ResourceExhausted, format, args...)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(overloadRetry)}); err == nil {
		st = d
	}
	return st.Err()
}

// RetryAfter reports whether err refused a call because the server was
// busy, and how long the call should wait before it is retried.
func RetryAfter(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// SetRetryAfter sets the Retry-After header (whole seconds, at least one)
// of an HTTP answer to a call refused because the server was busy, and
// reports whether err was such a refusal.
func SetRetryAfter(h http.Header, err error) bool {
	secs, ok := retryAfterSeconds(err)
	if ok {
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	return ok
}

// retryAfterSeconds is RetryAfter in whole seconds, at least one: the
// Retry-After header's value.
func retryAfterSeconds(err error) (int, bool) {
	d, ok := RetryAfter(err)
	return max(1, int((d+time.Second-1)/time.Second)), ok
}
