package caveats

import (
	"fmt"
	"net/netip"
	"reflect"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"
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

// inCIDROverload is the overload id of ipaddress.in_cidr(string).
const inCIDROverload = "ipaddress_in_cidr_string"

// ipAddressLibrary declares the ipaddress type's methods.
func ipAddressLibrary() cel.EnvOption {
	return cel.Function("in_cidr",
		cel.MemberOverload(inCIDROverload,
			[]*cel.Type{ipAddressType, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(inCIDR)))
}

// constantCIDR is a planner decorator that specialises in_cidr calls whose
// argument is a valid constant CIDR, the usual form
// (`ip.in_cidr('10.0.0.0/8')`): the prefix is parsed once, when the program
// is planned, instead of on every evaluation. Calls with a computed or
// invalid CIDR keep the general implementation and its run-time error.
func constantCIDR(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok || call.OverloadID() != inCIDROverload || len(call.Args()) != 2 {
		return i, nil
	}
	k, ok := call.Args()[1].(interpreter.InterpretableConst)
	if !ok {
		return i, nil
	}
	s, ok := k.Value().(types.String)
	if !ok {
		return i, nil
	}
	prefix, err := netip.ParsePrefix(string(s))
	if err != nil {
		return i, nil
	}
	return &cidrCall{id: call.ID(), ip: call.Args()[0], prefix: prefix}, nil
}

// cidrCall evaluates ip.in_cidr(<constant prefix>).
type cidrCall struct {
	id     int64
	ip     interpreter.InterpretableV2
	prefix netip.Prefix
}

// ID implements interpreter.Interpretable.
func (c *cidrCall) ID() int64 { return c.id }

// Eval implements interpreter.Interpretable.
func (c *cidrCall) Eval(a interpreter.Activation) ref.Val { return c.contains(c.ip.Eval(a)) }

// Exec implements interpreter.InterpretableV2.
func (c *cidrCall) Exec(f *interpreter.ExecutionFrame) ref.Val { return c.contains(c.ip.Exec(f)) }

// contains applies the prefix to the evaluated receiver; unknowns and errors
// pass through as they do for any strict function.
func (c *cidrCall) contains(v ref.Val) ref.Val {
	ip, ok := v.(ipAddress)
	if !ok {
		if types.IsUnknownOrError(v) {
			return v
		}
		return types.NewErr("in_cidr: receiver is %s, not ipaddress", v.Type().TypeName())
	}
	return types.Bool(c.prefix.Contains(ip.addr))
}
