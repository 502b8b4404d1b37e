package api

// A decoder for the plain shape of AuthZEN decision requests, which nearly
// every gateway sends: objects whose members are subject, action, resource
// (each an object of type, id and name only), and for /evaluations an
// evaluations array of such objects and options.evaluations_semantic; every
// string printable ASCII without escapes; every key once. It needs no
// reflection and no maps. Anything else (context, properties, escapes,
// numbers, null, a repeated key, whitespace oddities aside) makes it give up,
// and the request is decoded by encoding/json as before, so both give the
// same request and every error comes from one place. On the evaluation
// endpoint encoding/json was about a third of the AuthZEN handler's CPU
// (bench/RESULTS.md, "AuthZEN: the layer's cost").

type plainJSON struct {
	b []byte
	i int
}

func (p *plainJSON) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// next consumes c after optional space.
func (p *plainJSON) next(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes.
func (p *plainJSON) str() (string, bool) {
	if !p.next('"') {
		return "", false
	}
	for j := p.i; j < len(p.b); j++ {
		switch c := p.b[j]; {
		case c == '"':
			s := string(p.b[p.i:j])
			p.i = j + 1
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return "", false
		}
	}
	return "", false
}

// object reads an object, calling member for each key with the value next;
// member reads the value. A key seen twice gives up.
func (p *plainJSON) object(member func(key string) bool) bool {
	if !p.next('{') {
		return false
	}
	if p.next('}') {
		return true
	}
	var seen [8]string
	n := 0
	for {
		k, ok := p.str()
		if !ok || !p.next(':') {
			return false
		}
		for _, s := range seen[:n] {
			if s == k {
				return false
			}
		}
		if n == len(seen) {
			return false
		}
		seen[n] = k
		n++
		if !member(k) {
			return false
		}
		if p.next('}') {
			return true
		}
		if !p.next(',') {
			return false
		}
	}
}

func (p *plainJSON) entity() (*azEntity, bool) {
	e := &azEntity{}
	ok := p.object(func(k string) bool {
		v, ok := p.str()
		switch k {
		case "type":
			e.Type = v
		case "id":
			e.ID, e.hasID = v, true
		case "name":
			e.Name = v
		default:
			return false
		}
		return ok
	})
	return e, ok
}

// member reads subject, action or resource into ev.
func (p *plainJSON) member(ev *azEvaluation, k string) bool {
	e, ok := p.entity()
	switch k {
	case "subject":
		ev.Subject = e
	case "action":
		ev.Action = e
	case "resource":
		ev.Resource = e
	default:
		return false
	}
	return ok
}

func (p *plainJSON) evaluation(ev *azEvaluation) bool {
	return p.object(func(k string) bool { return p.member(ev, k) })
}

// end reports whether only space is left.
func (p *plainJSON) end() bool {
	p.space()
	return p.i == len(p.b)
}

// decodePlainEvaluation decodes an /evaluation body of the plain shape into
// ev, which it leaves alone when the body is not of that shape.
func decodePlainEvaluation(b []byte, ev *azEvaluation) bool {
	var out azEvaluation
	p := &plainJSON{b: b}
	if !p.evaluation(&out) || !p.end() {
		return false
	}
	*ev = out
	return true
}

// decodePlainEvaluations decodes an /evaluations body of the plain shape
// into req, which it leaves alone when the body is not of that shape.
func decodePlainEvaluations(b []byte, out *azEvaluationsRequest) bool {
	var req azEvaluationsRequest
	p := &plainJSON{b: b}
	ok := p.object(func(k string) bool {
		switch k {
		case "evaluations":
			if !p.next('[') {
				return false
			}
			req.Evaluations = []azEvaluation{}
			if p.next(']') {
				return true
			}
			for {
				var ev azEvaluation
				if !p.evaluation(&ev) {
					return false
				}
				req.Evaluations = append(req.Evaluations, ev)
				if p.next(']') {
					return true
				}
				if !p.next(',') {
					return false
				}
			}
		case "options":
			return p.object(func(k string) bool {
				v, ok := p.str()
				req.Options.EvaluationsSemantic = v
				return ok && k == "evaluations_semantic"
			})
		}
		return p.member(&req.azEvaluation, k)
	})
	if !ok || !p.end() {
		return false
	}
	*out = req
	return true
}
