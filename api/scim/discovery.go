package scim

import (
	"net/http"
	"slices"
	"strings"
)

// serviceProviderConfig is what ambit supports (RFC 7643 §5).
func serviceProviderConfig(maxBulk int, maxBody int64) map[string]any {
	return map[string]any{
		"schemas":          []string{"urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"},
		"documentationUri": "https://github.com/ambit-authz/ambit#scim",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": true, "maxOperations": maxBulk, "maxPayloadSize": maxBody},
		"filter":           map[string]any{"supported": true, "maxResults": MaxCount},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": true},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type": "oauthbearertoken", "name": "Bearer token", "primary": true,
			"description": "An ambit API token with the scim scope (or a preshared key) as Authorization: Bearer.",
		}},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig"},
	}
}

func resourceTypeJSON(kind Kind) map[string]any {
	core, exts := schemasOf(kind)
	rt := map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:ResourceType"},
		"id":       resourceType(kind),
		"name":     resourceType(kind),
		"endpoint": "/" + string(kind),
		"schema":   core,
		"meta":     map[string]any{"resourceType": "ResourceType"},
	}
	var ext []any
	for _, e := range exts {
		ext = append(ext, map[string]any{"schema": e, "required": false})
	}
	if ext != nil {
		rt["schemaExtensions"] = ext
	}
	return rt
}

func (h *Handler) resourceTypes(w http.ResponseWriter, rest []string) error {
	all := []map[string]any{resourceTypeJSON(Users), resourceTypeJSON(Groups)}
	if len(rest) == 0 {
		writeJSON(w, http.StatusOK, listOf(all))
		return nil
	}
	for _, rt := range all {
		if len(rest) == 1 && rt["id"] == rest[0] {
			writeJSON(w, http.StatusOK, rt)
			return nil
		}
	}
	return errorf(http.StatusNotFound, "", "no resource type %q", strings.Join(rest, "/"))
}

func listOf(items []map[string]any) map[string]any {
	out := make([]any, len(items))
	for i, x := range items {
		out[i] = x
	}
	return map[string]any{"schemas": []string{ListResponseSchema}, "totalResults": len(items), "startIndex": 1, "itemsPerPage": len(items), "Resources": out}
}

func attributeJSON(a Attribute) map[string]any {
	returned := "default"
	if strings.EqualFold(a.Name, "id") {
		returned = "always"
	}
	if a.Mutability == WriteOnly {
		returned = "never"
	}
	out := map[string]any{
		"name": a.Name, "type": string(a.Type), "multiValued": a.MultiValued, "required": a.Required,
		"caseExact": a.CaseExact, "mutability": string(a.Mutability), "returned": returned, "uniqueness": a.Uniqueness,
	}
	if a.Uniqueness == "" {
		out["uniqueness"] = "none"
	}
	if len(a.Sub) > 0 {
		var subs []any
		for _, s := range a.Sub {
			subs = append(subs, attributeJSON(s))
		}
		out["subAttributes"] = subs
	}
	return out
}

func schemaJSON(s *Schema) map[string]any {
	var attrs []any
	for _, a := range s.Attributes {
		if strings.EqualFold(a.Name, "id") || strings.EqualFold(a.Name, "externalId") || strings.EqualFold(a.Name, "meta") {
			continue // common attributes are not part of a schema's definition (RFC 7643 §3.1)
		}
		attrs = append(attrs, attributeJSON(a))
	}
	return map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Schema"},
		"id":      s.ID, "name": s.Name, "description": s.Description, "attributes": attrs,
		"meta": map[string]any{"resourceType": "Schema", "location": "/Schemas/" + s.ID},
	}
}

func schemasEndpoint(w http.ResponseWriter, rest []string) error {
	ids := []string{UserSchema, GroupSchema, EnterpriseUserSchema}
	if len(rest) == 0 {
		var all []map[string]any
		for _, id := range ids {
			all = append(all, schemaJSON(Schemas[id]))
		}
		writeJSON(w, http.StatusOK, listOf(all))
		return nil
	}
	if id := strings.Join(rest, "/"); slices.Contains(ids, id) {
		writeJSON(w, http.StatusOK, schemaJSON(Schemas[id]))
		return nil
	}
	return errorf(http.StatusNotFound, "", "no schema %q", strings.Join(rest, "/"))
}
