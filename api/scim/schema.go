package scim

import "strings"

// The schema URNs ambit serves (RFC 7643 §8.7).
const (
	UserSchema           = "urn:ietf:params:scim:schemas:core:2.0:User"
	GroupSchema          = "urn:ietf:params:scim:schemas:core:2.0:Group"
	EnterpriseUserSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	PatchOpSchema        = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	ListResponseSchema   = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	ErrorSchema          = "urn:ietf:params:scim:api:messages:2.0:Error"
)

// Type is an attribute's data type (RFC 7643 §2.3).
type Type string

// The data types ambit's attributes use.
const (
	String    Type = "string"
	Boolean   Type = "boolean"
	Integer   Type = "integer"
	DateTime  Type = "dateTime"
	Reference Type = "reference"
	Complex   Type = "complex"
	Binary    Type = "binary"
)

// Mutability of an attribute (RFC 7643 §7).
type Mutability string

// The mutabilities ambit's attributes use.
const (
	ReadWrite Mutability = "readWrite"
	ReadOnly  Mutability = "readOnly"
	Immutable Mutability = "immutable"
	// WriteOnly attributes are accepted and never returned; ambit does not
	// keep them either (a password: ambit authenticates no SCIM user).
	WriteOnly Mutability = "writeOnly"
)

// Attribute describes one attribute of a schema.
type Attribute struct {
	Name        string
	Type        Type
	MultiValued bool
	Required    bool
	CaseExact   bool
	Mutability  Mutability
	Uniqueness  string // "none" or "server"
	Sub         []Attribute
}

// Schema is a resource schema or an extension.
type Schema struct {
	ID, Name, Description string
	Attributes            []Attribute
}

func attr(name string, t Type) Attribute {
	return Attribute{Name: name, Type: t, Mutability: ReadWrite, Uniqueness: "none"}
}

func multi(a Attribute) Attribute    { a.MultiValued = true; return a }
func required(a Attribute) Attribute { a.Required = true; return a }
func exact(a Attribute) Attribute    { a.CaseExact = true; return a }
func mut(a Attribute, m Mutability) Attribute {
	a.Mutability = m
	return a
}
func complexOf(name string, sub ...Attribute) Attribute {
	a := attr(name, Complex)
	a.Sub = sub
	return a
}

// multiValuedSubs are the sub-attributes of a multi-valued attribute such
// as emails (RFC 7643 §2.4).
func multiValuedSubs(valueType Type) []Attribute {
	return []Attribute{attr("value", valueType), attr("display", String), attr("type", String), attr("primary", Boolean)}
}

// common are the attributes every resource has (RFC 7643 §3.1).
var common = []Attribute{
	exact(mut(attr("id", String), ReadOnly)),
	exact(attr("externalId", String)),
	mut(complexOf("meta",
		mut(attr("resourceType", String), ReadOnly), mut(attr("created", DateTime), ReadOnly),
		mut(attr("lastModified", DateTime), ReadOnly), exact(mut(attr("location", Reference), ReadOnly)),
		exact(mut(attr("version", String), ReadOnly))), ReadOnly),
}

// Schemas are the schemas ambit serves, by URN.
var Schemas = map[string]*Schema{
	UserSchema: {ID: UserSchema, Name: "User", Description: "User Account", Attributes: append(append([]Attribute{}, common...),
		func() Attribute { a := required(attr("userName", String)); a.Uniqueness = "server"; return a }(),
		complexOf("name", attr("formatted", String), attr("familyName", String), attr("givenName", String),
			attr("middleName", String), attr("honorificPrefix", String), attr("honorificSuffix", String)),
		attr("displayName", String), attr("nickName", String), attr("profileUrl", Reference), attr("title", String),
		attr("userType", String), attr("preferredLanguage", String), attr("locale", String), attr("timezone", String),
		attr("active", Boolean),
		mut(attr("password", String), WriteOnly),
		multi(complexOf("emails", multiValuedSubs(String)...)),
		multi(complexOf("phoneNumbers", multiValuedSubs(String)...)),
		multi(complexOf("ims", multiValuedSubs(String)...)),
		multi(complexOf("photos", multiValuedSubs(Reference)...)),
		multi(complexOf("addresses", attr("formatted", String), attr("streetAddress", String), attr("locality", String),
			attr("region", String), attr("postalCode", String), attr("country", String), attr("type", String), attr("primary", Boolean))),
		mut(multi(complexOf("groups", multiValuedSubs(String)...)), ReadOnly),
		multi(complexOf("entitlements", multiValuedSubs(String)...)),
		multi(complexOf("roles", multiValuedSubs(String)...)),
		multi(complexOf("x509Certificates", multiValuedSubs(Binary)...)),
	)},
	GroupSchema: {ID: GroupSchema, Name: "Group", Description: "Group", Attributes: append(append([]Attribute{}, common...),
		required(attr("displayName", String)),
		multi(complexOf("members", exact(mut(attr("value", String), Immutable)), attr("display", String), exact(attr("$ref", Reference)), attr("type", String))),
	)},
	EnterpriseUserSchema: {ID: EnterpriseUserSchema, Name: "EnterpriseUser", Description: "Enterprise User", Attributes: []Attribute{
		attr("employeeNumber", String), attr("costCenter", String), attr("organization", String),
		attr("division", String), attr("department", String),
		complexOf("manager", attr("value", String), exact(attr("$ref", Reference)), mut(attr("displayName", String), ReadOnly)),
	}},
}

// find returns the attribute named name (case-insensitively) in attrs.
func find(attrs []Attribute, name string) *Attribute {
	for i := range attrs {
		if strings.EqualFold(attrs[i].Name, name) {
			return &attrs[i]
		}
	}
	return nil
}

// Resolve finds the attribute a path names in a resource of the schema core
// with the given extensions: the attribute, and the sub-attribute if the
// path has one (nil otherwise). ok is false for an unknown attribute.
func Resolve(core string, extensions []string, p AttrPath) (a, sub *Attribute, ok bool) {
	s := Schemas[core]
	if p.URI != "" {
		if !strings.EqualFold(p.URI, core) {
			s = nil
			for _, e := range extensions {
				if strings.EqualFold(p.URI, e) {
					s = Schemas[e]
				}
			}
		}
	}
	if s == nil {
		return nil, nil, false
	}
	if a = find(s.Attributes, p.Name); a == nil {
		return nil, nil, false
	}
	if p.Sub == "" {
		return a, nil, true
	}
	if sub = find(a.Sub, p.Sub); sub == nil {
		return nil, nil, false
	}
	return a, sub, true
}
