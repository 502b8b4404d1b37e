package api

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// SpiceDB's clients ask a server for its version by sending the request
// header requestVersionKey; the server answers in the response header
// responseVersionKey. zed warns "not calling a released version of SpiceDB"
// when the answer is missing, and compares the answer with its own version
// unless it carries semver build metadata, which ambit's always does.
const (
	requestVersionKey  = "io.spicedb.requestserverversion"
	responseVersionKey = "io.spicedb.respmeta.serverversion"
)

// ServerVersion turns a build's version string into the semver that ambit
// reports to SpiceDB clients: a release "v1.2.3" (or "1.2.3") becomes
// "v1.2.3+ambit"; anything else ("dev", a commit, "") becomes a
// pre-release of v0.0.0, "v0.0.0-dev+ambit", its characters limited to
// those semver allows in an identifier.
func ServerVersion(build string) string {
	v := strings.TrimPrefix(build, "v")
	if plus := strings.IndexByte(v, '+'); plus >= 0 {
		v = v[:plus]
	}
	if isSemverCore(v) {
		return "v" + v + "+ambit"
	}
	pre := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '.':
			return r
		}
		return '-'
	}, strings.Trim(build, "."))
	if pre == "" {
		pre = "dev"
	}
	return "v0.0.0-" + pre + "+ambit"
}

// isSemverCore reports whether v is MAJOR.MINOR.PATCH, optionally followed
// by a "-" pre-release of identifier characters.
func isSemverCore(v string) bool {
	core, pre, hasPre := strings.Cut(v, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" || (len(p) > 1 && p[0] == '0') {
			return false
		}
	}
	if !hasPre {
		return true
	}
	for _, id := range strings.Split(pre, ".") {
		if id == "" || strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") != "" {
			return false
		}
	}
	return true
}

// asksVersion reports whether the caller sent requestVersionKey.
func asksVersion(ctx context.Context) bool {
	return len(metadata.ValueFromIncomingContext(ctx, requestVersionKey)) > 0
}

// versionStream (and unaryChain) answer a caller that asks for the server
// version in the response header, before the handler runs, as SpiceDB does.
func versionStream(v string) grpc.StreamServerInterceptor {
	md := metadata.Pairs(responseVersionKey, v)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if asksVersion(ss.Context()) {
			_ = ss.SetHeader(md)
		}
		return h(srv, ss)
	}
}
