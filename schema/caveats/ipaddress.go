package caveats

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
)

// ipAddressType is the CEL type of ipaddress parameters. The type name
// "IPAddress" is SpiceDB's; it only shows in type-check error messages.
var ipAddressType = cel.ObjectType("IPAddress", traits.ReceiverType)

// ipAddress is the CEL value of an ipaddress parameter. It supports equality
// and the in_cidr method; comparing or combining it with anything else is a
// type-check error.
type ipAddress struct {
	addr netip.Addr
}

var _ ref.Val = ipAddress{}

// parseIPAddress parses an IPv4 or IPv6 address (with optional zone) as
// netip.ParseAddr does, which is what SpiceDB accepts.
func parseIPAddress(s string) (ipAddress, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ipAddress{}, err
	}
	return ipAddress{addr: a}, nil
}

// ConvertToNative implements ref.Val: an ipaddress converts to its string
// form or to a netip.Addr.
func (ip ipAddress) ConvertToNative(typeDesc reflect.Type) (any, error) {
	switch typeDesc {
	case reflect.TypeFor[string]():
		return ip.addr.String(), nil
	case reflect.TypeFor[netip.Addr]():
		return ip.addr, nil
	}
	return nil, fmt.Errorf("cannot convert ipaddress to %v", typeDesc)
}

// ConvertToType implements ref.Val.
func (ip ipAddress) ConvertToType(typeVal ref.Type) ref.Val {
	switch typeVal {
	case types.StringType:
		return types.String(ip.addr.String())
	case types.TypeType:
		return ipAddressType
	}
	return types.NewErr("type conversion error from ipaddress to %s", typeVal.TypeName())
}

// Equal implements ref.Val: two addresses are equal when netip considers
// them equal (same family, bytes and zone).
func (ip ipAddress) Equal(other ref.Val) ref.Val {
	o, ok := other.(ipAddress)
	if !ok {
		return types.False
	}
	return types.Bool(ip.addr == o.addr)
}

// Type implements ref.Val.
func (ip ipAddress) Type() ref.Type { return ipAddressType }

// Value implements ref.Val.
func (ip ipAddress) Value() any { return ip.addr }

// inCIDR implements ipaddress.in_cidr(string) -> bool with SpiceDB's
// semantics: the argument is parsed by netip.ParsePrefix (host bits may be
// set: "10.1.2.3/8" means 10.0.0.0/8); an unparsable CIDR is an evaluation
// error; an address never lies in a prefix of the other family (an
// IPv4-mapped IPv6 address is not in an IPv4 prefix) nor, when it carries a
// zone, in any prefix.
func inCIDR(lhs, rhs ref.Val) ref.Val {
	ip, ok := lhs.(ipAddress)
	if !ok {
		return types.NewErr("in_cidr: receiver is %s, not ipaddress", lhs.Type().TypeName())
	}
	s, ok := rhs.(types.String)
	if !ok {
		return types.NewErr("in_cidr: argument is %s, not string", rhs.Type().TypeName())
	}
	prefix, err := netip.ParsePrefix(string(s))
	if err != nil {
		return types.NewErr("in_cidr: invalid CIDR string %q", truncate(string(s)))
	}
	return types.Bool(prefix.Contains(ip.addr))
}

// ipAddressLibrary declares the ipaddress type's methods.
func ipAddressLibrary() cel.EnvOption {
	return cel.Function("in_cidr",
		cel.MemberOverload("ipaddress_in_cidr_string",
			[]*cel.Type{ipAddressType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(inCIDR)))
}
