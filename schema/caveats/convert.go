package caveats

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// convert converts the context value v to a CEL value of type t, by the
// rules in the package documentation.
func convert(t *paramType, v any, depth int) (ref.Val, *conversionError) {
	if depth > MaxValueDepth {
		return nil, &conversionError{msg: fmt.Sprintf("value is nested deeper than %d levels", MaxValueDepth)}
	}
	switch t.kind {
	case kindAny:
		return convertAny(v, depth)
	case kindBool:
		if b, ok := v.(bool); ok {
			return types.Bool(b), nil
		}
		return nil, errWant("bool", v)
	case kindString:
		if s, ok := v.(string); ok {
			return types.String(s), nil
		}
		return nil, errWant("string", v)
	case kindInt:
		n, ok := toInt(v)
		if !ok {
			return nil, errWant("an integer in the int64 range", v)
		}
		return types.Int(n), nil
	case kindUint:
		n, ok := toInt(v)
		if !ok || n < 0 {
			return nil, errWant("a non-negative integer in the int64 range", v)
		}
		return types.Int(n), nil
	case kindDouble:
		f, err := toFloat(v)
		if err != nil {
			return nil, err
		}
		return types.Double(f), nil
	case kindBytes:
		s, ok := v.(string)
		if !ok {
			return nil, errWant("a base64 string", v)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, &conversionError{msg: fmt.Sprintf("expected a base64 string, got %s: %v", describe(v), err)}
		}
		return types.Bytes(b), nil
	case kindDuration:
		s, ok := v.(string)
		if !ok {
			return nil, errWant(`a duration string like "1h30m"`, v)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, errWant(`a duration string like "1h30m"`, v)
		}
		return types.Duration{Duration: d}, nil
	case kindTimestamp:
		s, ok := v.(string)
		if !ok {
			return nil, errWant("an RFC 3339 timestamp string", v)
		}
		ts, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, errWant("an RFC 3339 timestamp string", v)
		}
		return types.Timestamp{Time: ts}, nil
	case kindIPAddress:
		s, ok := v.(string)
		if !ok {
			return nil, errWant("an IP address string", v)
		}
		ip, err := parseIPAddress(s)
		if err != nil {
			return nil, errWant("an IP address string", v)
		}
		return ip, nil
	case kindList:
		l, ok := v.([]any)
		if !ok {
			return nil, errWant("a list", v)
		}
		if t.elem.kind == kindAny && plainJSON(v, depth) {
			return types.DefaultTypeAdapter.NativeToValue(l), nil
		}
		elems := make([]ref.Val, len(l))
		for i, e := range l {
			ev, err := convert(t.elem, e, depth+1)
			if err != nil {
				err.path = "[" + strconv.Itoa(i) + "]" + err.path
				return nil, err
			}
			elems[i] = ev
		}
		return types.NewRefValList(types.DefaultTypeAdapter, elems), nil
	case kindMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errWant("an object", v)
		}
		if t.elem.kind == kindAny && plainJSON(v, depth) {
			return types.NewStringInterfaceMap(types.DefaultTypeAdapter, m), nil
		}
		entries := make(map[ref.Val]ref.Val, len(m))
		for k, e := range m {
			ev, err := convert(t.elem, e, depth+1)
			if err != nil {
				err.path = "[" + strconv.Quote(truncate(k)) + "]" + err.path
				return nil, err
			}
			entries[types.String(k)] = ev
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, entries), nil
	}
	return nil, &conversionError{msg: fmt.Sprintf("unsupported parameter type %s", t)}
}

// convertAny converts a JSON value for an any parameter. Numbers become
// doubles, as they do in SpiceDB.
func convertAny(v any, depth int) (ref.Val, *conversionError) {
	if depth > MaxValueDepth {
		return nil, &conversionError{msg: fmt.Sprintf("value is nested deeper than %d levels", MaxValueDepth)}
	}
	if plainJSON(v, depth) {
		// CEL's adapter converts plain JSON values as convertAny would, and
		// lazily: a map's values are adapted only when the expression reads
		// them.
		return types.DefaultTypeAdapter.NativeToValue(v), nil
	}
	switch v := v.(type) {
	case nil:
		return types.NullValue, nil
	case bool:
		return types.Bool(v), nil
	case string:
		return types.String(v), nil
	case []any:
		elems := make([]ref.Val, len(v))
		for i, e := range v {
			ev, err := convertAny(e, depth+1)
			if err != nil {
				err.path = "[" + strconv.Itoa(i) + "]" + err.path
				return nil, err
			}
			elems[i] = ev
		}
		return types.NewRefValList(types.DefaultTypeAdapter, elems), nil
	case map[string]any:
		entries := make(map[ref.Val]ref.Val, len(v))
		for k, e := range v {
			ev, err := convertAny(e, depth+1)
			if err != nil {
				err.path = "[" + strconv.Quote(truncate(k)) + "]" + err.path
				return nil, err
			}
			entries[types.String(k)] = ev
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, entries), nil
	}
	f, err := toFloat(v)
	if err != nil {
		return nil, errWant("a JSON value", v)
	}
	return types.Double(f), nil
}

// plainJSON reports whether v, at nesting depth, holds only the types
// encoding/json produces (nil, bool, float64, string, []any, map[string]any)
// nested no deeper than MaxValueDepth.
func plainJSON(v any, depth int) bool {
	if depth > MaxValueDepth {
		return false
	}
	switch v := v.(type) {
	case nil, bool, float64, string:
		return true
	case []any:
		for _, e := range v {
			if !plainJSON(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range v {
			if !plainJSON(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// toInt converts an integral number or numeric string to int64.
func toInt(v any) (int64, bool) {
	switch v := v.(type) {
	case float64:
		if n, ok := floatToInt(v); ok {
			return n, true
		}
	case float32:
		if n, ok := floatToInt(float64(v)); ok {
			return n, true
		}
	case string:
		if n, ok := stringToInt(v); ok {
			return n, true
		}
	case json.Number:
		if n, ok := stringToInt(string(v)); ok {
			return n, true
		}
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint:
		if uint64(v) <= math.MaxInt64 {
			return int64(v), true
		}
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	}
	return 0, false
}

// floatToInt returns f as an int64 when it is integral and in range.
func floatToInt(f float64) (int64, bool) {
	// -2^63 is exact in float64; 2^63 is the first value out of range.
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// stringToInt parses a decimal integer, or a decimal number with an integral
// value such as "4.2e1", as SpiceDB does.
func stringToInt(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	if len(s) > maxNumericString {
		return 0, false
	}
	f, _, err := big.ParseFloat(s, 10, 128, big.ToNearestEven)
	if err != nil || f.IsInf() || !f.IsInt() {
		return 0, false
	}
	n, acc := f.Int64()
	if acc != big.Exact {
		return 0, false
	}
	return n, true
}

// maxNumericString bounds the length of numeric strings handed to
// big.ParseFloat, whose cost grows with exponents like "1e99999999".
const maxNumericString = 64

// toFloat converts a number or numeric string to float64.
func toFloat(v any) (float64, *conversionError) {
	switch v := v.(type) {
	case float64:
		return v, nil
	case float32:
		return float64(v), nil
	case string:
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f, nil
		}
	case json.Number:
		if f, err := strconv.ParseFloat(string(v), 64); err == nil {
			return f, nil
		}
	case int:
		return float64(v), nil
	case int8:
		return float64(v), nil
	case int16:
		return float64(v), nil
	case int32:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case uint:
		return float64(v), nil
	case uint8:
		return float64(v), nil
	case uint16:
		return float64(v), nil
	case uint32:
		return float64(v), nil
	case uint64:
		return float64(v), nil
	}
	return 0, errWant("a number", v)
}
