// Package endpoints dials a list of server addresses as one gRPC client
// connection that spreads calls over them round robin. The CLI and the
// bench harness take `--endpoint a,b,c` through it: reads are served by
// whichever member a call lands on (voters and read replicas alike) and
// writes are forwarded to the leader by the member that receives them.
package endpoints

import (
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// roundRobin is the service config that balances calls over every
// resolved address (gRPC's default, pick_first, sends all to one).
const roundRobin = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Split parses a comma-separated endpoint list, dropping blanks.
func Split(list string) []string {
	var out []string
	for _, e := range strings.Split(list, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Dial opens a client connection to list: one address is dialled as it is
// (a DNS name resolving to several addresses still goes to one of them
// unless opts choose round_robin); several are balanced round robin, each
// call to the next ready address. Nothing is sent until the first call.
func Dial(list string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	addrs := Split(list)
	switch len(addrs) {
	case 0:
		return nil, fmt.Errorf("no endpoint in %q", list)
	case 1:
		return grpc.NewClient(addrs[0], opts...)
	}
	r := manual.NewBuilderWithScheme("ambit-endpoints")
	state := resolver.State{}
	for _, a := range addrs {
		state.Addresses = append(state.Addresses, resolver.Address{Addr: a})
	}
	r.InitialState(state)
	opts = append(opts, grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(roundRobin))
	return grpc.NewClient(r.Scheme()+":///"+strings.Join(addrs, ","), opts...)
}
