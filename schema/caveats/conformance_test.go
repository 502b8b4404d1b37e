package caveats

import (
	"maps"
	"testing"
)

// TestSpiceDBConformanceCaveats evaluates, caveat by caveat, the contexts
// exercised by SpiceDB's caveat validation files (basiccaveat, allopscaveat,
// caveatarrow, caveatmap, caveatlr, caveatindirectarrow,
// caveatedintersectionarrow, caveatunderintersect, publiccaveat,
// publiccaveatexclusion, expirationwithcaveat, multibranchcaveat*). Each case
// is one caveated relationship checked with one request context; the
// relationship's stored context wins over the request's, as the engine merges
// them. want is the caveat's outcome that makes the file's assertion hold:
// true, false, or conditional on the listed missing parameters.
func TestSpiceDBConformanceCaveats(t *testing.T) {
	type caveatDef struct {
		params []Param
		expr   string
	}
	defs := map[string]caveatDef{
		"some_caveat":    {p("somecondition", "int"), "somecondition == 42"},
		"another_caveat": {p("anothercondition", "string"), "anothercondition == 'hello world'"},
		"third_caveat":   {p("thirdcondition", "bool"), "thirdcondition"},
		"map_caveat":     {p("somemap", "map<any>"), "somemap.foo == 42 && somemap.bar < 56"},
		"unexpired":      {p("expires_at", "timestamp", "now", "timestamp"), "now < expires_at"},
		"team_is_admin":  {p("admin_teams", "list<string>", "me", "string"), "me in admin_teams"},
		"membercaveat":   {p("memberparam", "int"), "memberparam >= 42"},
		"teamcaveat":     {p("teamparam", "int"), "teamparam < 42"},
		"somevalue":      {p("somevalue", "int"), "somevalue == 42"},
		"equals":         {p("actual", "string", "required", "string"), "actual == required"},
		"anyorder":       {p("anothercondition", "uint"), "anothercondition == 15"},
	}
	type result struct {
		value   bool
		missing []string
	}
	yes, no := result{value: true}, result{value: false}
	needs := func(names ...string) result { return result{missing: names} }

	cases := []struct {
		name    string
		caveat  string
		stored  string // relationship context, JSON
		request string // request context, JSON
		want    result
	}{
		// basiccaveat.yaml
		{"tom stored 42", "some_caveat", `{"somecondition":42}`, `{}`, yes},
		{"fred stored 41", "some_caveat", `{"somecondition":41}`, `{}`, no},
		{"sarah no context", "some_caveat", `{}`, `{}`, needs("somecondition")},
		{"sarah request 42", "some_caveat", `{}`, `{"somecondition":42}`, yes},
		{"sarah request 41", "some_caveat", `{}`, `{"somecondition":41}`, no},
		{"stored 42 overrides request 41", "some_caveat", `{"somecondition":42}`, `{"somecondition":41}`, yes},
		{"stored 41 overrides request 42", "some_caveat", `{"somecondition":41}`, `{"somecondition":42}`, no},

		// allopscaveat.yaml
		{"another stored hello world", "another_caveat", `{"anothercondition":"hello world"}`, `{}`, yes},
		{"another request hello world", "another_caveat", `{}`, `{"anothercondition":"hello world"}`, yes},
		{"another request hi there", "another_caveat", `{}`, `{"anothercondition":"hi there"}`, no},
		{"another no context", "another_caveat", `{}`, `{}`, needs("anothercondition")},
		{"banned no context", "third_caveat", `{}`, `{}`, needs("thirdcondition")},
		{"banned request false", "third_caveat", `{}`, `{"thirdcondition":false}`, no},
		{"banned request true", "third_caveat", `{}`, `{"thirdcondition":true}`, yes},
		{"banned stored true", "third_caveat", `{"thirdcondition":true}`, `{}`, yes},
		{"unrelated request context", "some_caveat", `{}`, `{"anothercondition":"hello world"}`, needs("somecondition")},

		// caveatmap.yaml
		{"map tom", "map_caveat", `{"somemap":{"foo":42,"bar":10}}`, `{}`, yes},
		{"map fred", "map_caveat", `{"somemap":{"foo":42,"bar":57}}`, `{}`, no},
		{"map sarah no context", "map_caveat", `{}`, `{}`, needs("somemap")},
		{"map sarah negative bar", "map_caveat", `{}`, `{"somemap":{"foo":42,"bar":-2}}`, yes},
		{"map sarah foo 41 without bar", "map_caveat", `{}`, `{"somemap":{"foo":41}}`, no},
		{"map sarah bar 56", "map_caveat", `{}`, `{"somemap":{"foo":42,"bar":56}}`, no},

		// caveatlr.yaml
		{"unexpired now 2023", "unexpired", `{"expires_at":"2024-10-03T14:16:30.776734Z"}`, `{"now":"2023-01-01T00:00:00Z"}`, yes},
		{"unexpired now 2025", "unexpired", `{"expires_at":"2024-10-03T14:16:30.776734Z"}`, `{"now":"2025-01-01T00:00:00Z"}`, no},
		{"unexpired offset now 2023", "unexpired", `{"expires_at":"2024-10-03T07:16:28.068632-07:00"}`, `{"now":"2023-01-01T00:00:00Z"}`, yes},
		{"unexpired offset now 2025", "unexpired", `{"expires_at":"2024-10-03T07:16:28.068632-07:00"}`, `{"now":"2025-01-01T00:00:00Z"}`, no},
		{"expired fred", "unexpired", `{"expires_at":"2024-01-01T00:00:00Z"}`, `{"now":"2024-06-01T00:00:00Z"}`, no},
		{"unexpired without now", "unexpired", `{"expires_at":"2024-01-01T00:00:00Z"}`, `{}`, needs("now")},

		// caveatindirectarrow.yaml
		{"admin of A with A", "team_is_admin", `{"me":"A"}`, `{"admin_teams":["A"]}`, yes},
		{"admin of A with B", "team_is_admin", `{"me":"A"}`, `{"admin_teams":["B"]}`, no},
		{"admin of B with B", "team_is_admin", `{"me":"B"}`, `{"admin_teams":["B"]}`, yes},
		{"admin of A without list", "team_is_admin", `{"me":"A"}`, `{}`, needs("admin_teams")},

		// caveatedintersectionarrow.yaml
		{"member 42", "membercaveat", `{}`, `{"memberparam":42,"teamparam":41}`, yes},
		{"member 1", "membercaveat", `{}`, `{"memberparam":1,"teamparam":41}`, no},
		{"member stored 43", "membercaveat", `{"memberparam":43}`, `{}`, yes},
		{"member stored 3", "membercaveat", `{"memberparam":3}`, `{}`, no},
		{"member only teamparam", "membercaveat", `{}`, `{"teamparam":41}`, needs("memberparam")},
		{"team 41", "teamcaveat", `{}`, `{"memberparam":42,"teamparam":41}`, yes},
		{"team 100", "teamcaveat", `{}`, `{"memberparam":42,"teamparam":100}`, no},
		{"team stored 1", "teamcaveat", `{"teamparam":1}`, `{}`, yes},
		{"team stored 100", "teamcaveat", `{"teamparam":100}`, `{}`, no},

		// caveatunderintersect.yaml, publiccaveat*.yaml, expirationwithcaveat.yaml
		{"somevalue 42", "somevalue", `{}`, `{"somevalue":42}`, yes},
		{"somevalue 41", "somevalue", `{}`, `{"somevalue":41}`, no},
		{"public no context", "some_caveat", `{}`, `{}`, needs("somecondition")},
		{"public request 42", "some_caveat", `{}`, `{"somecondition":42}`, yes},

		// multibranchcaveatwitharrows.yaml, multibranchcaveatwithintersectionarrows.yaml
		{"equals admin", "equals", `{"required":"admin"}`, `{"actual":"admin"}`, yes},
		{"equals manager", "equals", `{"required":"manager"}`, `{"actual":"manager"}`, yes},
		{"equals manager vs admin", "equals", `{"required":"manager"}`, `{"actual":"admin"}`, no},
		{"equals unknown", "equals", `{"required":"admin"}`, `{"actual":"unknown"}`, no},
		{"equals without actual", "equals", `{"required":"admin"}`, `{}`, needs("actual")},

		// SpiceDB's compute-check tests: a uint parameter compared with an int literal.
		{"uint 15", "anyorder", `{}`, `{"anothercondition":15}`, yes},
		{"uint 16", "anyorder", `{"anothercondition":16}`, `{"anothercondition":15}`, no},
	}
	compiled := map[string]*Caveat{}
	for name, d := range defs {
		c, err := Compile(name, d.params, d.expr)
		if err != nil {
			t.Fatalf("Compile(%s): %v", name, err)
		}
		compiled[name] = c
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stored, request := ctxJSON(t, tc.stored), ctxJSON(t, tc.request)
			ctx := maps.Clone(request)
			maps.Copy(ctx, stored)
			got, err := compiled[tc.caveat].Evaluate(ctx)
			if err != nil {
				t.Fatalf("Evaluate(%v): %v", ctx, err)
			}
			checkResult(t, got, nil, evalCase{want: tc.want.value, missing: tc.want.missing})

			got, err = compiled[tc.caveat].EvaluateLayered(stored, request)
			if err != nil {
				t.Fatalf("EvaluateLayered(%v, %v): %v", stored, request, err)
			}
			checkResult(t, got, nil, evalCase{want: tc.want.value, missing: tc.want.missing})
		})
	}
}
