package api_test

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ambit-authz/ambit/api"
)

// spiceDBInfo returns the ErrorInfo in SpiceDB's domain that err carries.
func spiceDBInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == api.SpiceDBDomain {
			return info
		}
	}
	return nil
}

// Errors carry SpiceDB's ErrorReason (authzed.com domain) wherever SpiceDB
// has one, with the code SpiceDB answers.
func TestSpiceDBErrorReasons(t *testing.T) {
	e := newEnv(t)
	e.writeSchema(testSchema)
	e.write(opTouch, "document:a#viewer@user:ana")
	for _, c := range []struct {
		name   string
		call   func() error
		code   codes.Code
		reason v1.ErrorReason
		meta   map[string]string
	}{
		{"schema parse error", func() error {
			_, err := e.schema.WriteSchema(e.ctx(), &v1.WriteSchemaRequest{Schema: "definition user {}\ndefinition doc {\n  relation viewer user\n}"})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_SCHEMA_PARSE_ERROR, map[string]string{"start_line_number": "2"}},
		{"unknown definition", func() error {
			_, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: full(), Resource: obj("folder:x"), Permission: "view", Subject: subj("user:ana")})
			return err
		}, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_DEFINITION, nil},
		{"unknown permission", func() error {
			_, err := e.perms.CheckPermission(e.ctx(), &v1.CheckPermissionRequest{Consistency: full(), Resource: obj("document:a"), Permission: "destroy", Subject: subj("user:ana")})
			return err
		}, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION, nil},
		{"precondition failed", func() error {
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:b#viewer@user:ana")},
				OptionalPreconditions: []*v1.Precondition{{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: &v1.RelationshipFilter{ResourceType: "document", OptionalResourceId: "zzz"}}}})
			return err
		}, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_WRITE_OR_DELETE_PRECONDITION_FAILURE, nil},
		{"too many updates", func() error {
			var ups []*v1.RelationshipUpdate
			for i := range api.DefaultMaxUpdatesPerWrite + 1 {
				ups = append(ups, update(opTouch, fmt.Sprintf("document:d%d#viewer@user:ana", i)))
			}
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: ups})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_TOO_MANY_UPDATES_IN_REQUEST,
			map[string]string{"update_count": fmt.Sprint(api.DefaultMaxUpdatesPerWrite + 1), "maximum_updates_allowed": fmt.Sprint(api.DefaultMaxUpdatesPerWrite)}},
		{"too many preconditions", func() error {
			var ps []*v1.Precondition
			for range api.DefaultMaxPreconditions + 1 {
				ps = append(ps, &v1.Precondition{Operation: v1.Precondition_OPERATION_MUST_MATCH, Filter: &v1.RelationshipFilter{ResourceType: "document"}})
			}
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:b#viewer@user:ana")},
				OptionalPreconditions: ps})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_TOO_MANY_PRECONDITIONS_IN_REQUEST, map[string]string{"maximum_preconditions_allowed": fmt.Sprint(api.DefaultMaxPreconditions)}},
		{"too many checks", func() error {
			var items []*v1.CheckBulkPermissionsRequestItem
			for range api.DefaultMaxChecksPerBulk + 1 {
				items = append(items, &v1.CheckBulkPermissionsRequestItem{Resource: obj("document:a"), Permission: "view", Subject: subj("user:ana")})
			}
			_, err := e.perms.CheckBulkPermissions(e.ctx(), &v1.CheckBulkPermissionsRequest{Consistency: full(), Items: items})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_TOO_MANY_CHECKS_IN_REQUEST, map[string]string{"check_count": fmt.Sprint(api.DefaultMaxChecksPerBulk + 1)}},
		{"two updates of one relationship", func() error {
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
				update(opTouch, "document:b#viewer@user:ana"), update(opDelete, "document:b#viewer@user:ana")}})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_UPDATES_ON_SAME_RELATIONSHIP, map[string]string{"definition_name": "document"}},
		{"invalid cursor", func() error {
			st, err := e.perms.ReadRelationships(e.ctx(), &v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document"},
				OptionalLimit: 1, OptionalCursor: &v1.Cursor{Token: "not-a-cursor"}})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_INVALID_CURSOR, nil},
		{"cursor of another request", func() error {
			st, err := e.perms.ReadRelationships(e.ctx(), &v1.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document"}, OptionalLimit: 1})
			if err != nil {
				return err
			}
			r, err := st.Recv()
			if err != nil {
				return err
			}
			st, err = e.perms.ReadRelationships(e.ctx(), &v1.ReadRelationshipsRequest{RelationshipFilter: &v1.RelationshipFilter{ResourceType: "group"},
				OptionalLimit: 1, OptionalCursor: r.GetAfterResultCursor()})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_INVALID_CURSOR, nil},
		{"limit above the maximum", func() error {
			st, err := e.perms.ReadRelationships(e.ctx(), &v1.ReadRelationshipsRequest{Consistency: full(), RelationshipFilter: &v1.RelationshipFilter{ResourceType: "document"},
				OptionalLimit: api.DefaultMaxReadLimit + 1})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT,
			map[string]string{"limit_provided": fmt.Sprint(api.DefaultMaxReadLimit + 1), "maximum_limit_allowed": fmt.Sprint(api.DefaultMaxReadLimit)}},
		{"lookup limit above the maximum", func() error {
			st, err := e.perms.LookupResources(e.ctx(), &v1.LookupResourcesRequest{ResourceObjectType: "document", Permission: "view", Subject: subj("user:ana"),
				OptionalLimit: api.DefaultMaxLookupResults + 1})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT,
			map[string]string{"limit_provided": fmt.Sprint(api.DefaultMaxLookupResults + 1), "maximum_limit_allowed": fmt.Sprint(api.DefaultMaxLookupResults)}},
		{"subject lookup limit above the maximum", func() error {
			st, err := e.perms.LookupSubjects(e.ctx(), &v1.LookupSubjectsRequest{Resource: obj("document:a"), Permission: "view", SubjectObjectType: "user",
				OptionalConcreteLimit: api.DefaultMaxLookupResults + 1})
			if err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT,
			map[string]string{"limit_provided": fmt.Sprint(api.DefaultMaxLookupResults + 1), "maximum_limit_allowed": fmt.Sprint(api.DefaultMaxLookupResults)}},
		{"write to a permission", func() error {
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#view@user:ana")}})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_CANNOT_UPDATE_PERMISSION, map[string]string{"definition_name": "document", "permission_name": "view"}},
		{"subject type not allowed", func() error {
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#owner@user:*")}})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_INVALID_SUBJECT_TYPE,
			map[string]string{"definition_name": "document", "relation_name": "owner", "subject_type": "user:*"}},
		{"caveat not allowed", func() error {
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#owner@user:ana[weekday]")}})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_INVALID_SUBJECT_TYPE,
			map[string]string{"definition_name": "document", "relation_name": "owner", "subject_type": "user with weekday"}},
		{"unknown caveat", func() error {
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#viewer@user:ana[nosuch]")}})
			return err
		}, codes.InvalidArgument, v1.ErrorReason_ERROR_REASON_UNKNOWN_CAVEAT, map[string]string{"caveat_name": "nosuch"}},
		{"write of an unknown relation", func() error {
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(opTouch, "document:a#editor@user:ana")}})
			return err
		}, codes.FailedPrecondition, v1.ErrorReason_ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION,
			map[string]string{"definition_name": "document", "relation_or_permission_name": "editor"}},
		{"create of an existing relationship", func() error {
			_, err := e.perms.WriteRelationships(e.ctx(), &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{update(v1.RelationshipUpdate_OPERATION_CREATE, "document:a#viewer@user:ana")}})
			return err
		}, codes.AlreadyExists, v1.ErrorReason_ERROR_REASON_ATTEMPT_TO_RECREATE_RELATIONSHIP, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if status.Code(err) != c.code {
				t.Fatalf("got %v, want code %v", err, c.code)
			}
			info := spiceDBInfo(err)
			if info == nil || info.GetReason() != c.reason.String() {
				t.Fatalf("ErrorInfo %v, want reason %v", info, c.reason)
			}
			for k, v := range c.meta {
				if info.GetMetadata()[k] != v {
					t.Errorf("metadata %s = %q, want %q (all: %v)", k, info.GetMetadata()[k], v, info.GetMetadata())
				}
			}
		})
	}
}

// Refused schema writes answer SpiceDB's codes, on the contingent
// migrations of SpiceDB's "Updating and Migrating Schema" page: removing a
// relation or a definition that relationships still use waits for their
// deletion (FailedPrecondition); removing an allowed subject type, subject
// set or wildcard that relationships use makes the schema itself wrong
// (InvalidArgument).
func TestSchemaRefusalCodes(t *testing.T) {
	const base = `definition user {}

definition group {
	relation member: user
}

definition document {
	relation viewer: user | user:* | group#member
	relation editor: user
	permission view = viewer + editor
}
`
	for _, c := range []struct {
		name     string
		rels     []string
		edit     func(string) string
		code     codes.Code
		mentions string
	}{
		{"removing a relation in use", []string{"document:a#editor@user:ana"},
			func(s string) string {
				return strings.Replace(strings.Replace(s, "\trelation editor: user\n", "", 1), " + editor", "", 1)
			}, codes.FailedPrecondition, "document#editor"},
		{"removing a definition in use", []string{"group:eng#member@user:ana"},
			func(s string) string {
				s = strings.Replace(s, "definition group {\n\trelation member: user\n}\n\n", "", 1)
				return strings.Replace(s, " | group#member", "", 1)
			}, codes.FailedPrecondition, "definition group"},
		{"removing an allowed subject type in use", []string{"document:a#viewer@user:ana"},
			func(s string) string { return strings.Replace(s, "viewer: user | user:*", "viewer: user:*", 1) },
			codes.InvalidArgument, "document#viewer"},
		{"removing an allowed subject set in use", []string{"document:a#viewer@group:eng#member"},
			func(s string) string { return strings.Replace(s, " | group#member", "", 1) },
			codes.InvalidArgument, "group#member"},
		{"removing a wildcard in use", []string{"document:a#viewer@user:*"},
			func(s string) string { return strings.Replace(s, " | user:*", "", 1) },
			codes.InvalidArgument, "user:*"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.writeSchema(base)
			e.write(opTouch, c.rels...)
			_, err := e.schema.WriteSchema(e.ctx(), &v1.WriteSchemaRequest{Schema: c.edit(base)})
			wantCode(t, err, c.code, c.mentions)
			// With the relationships gone, the same change is accepted.
			e.write(opDelete, c.rels...)
			e.writeSchema(c.edit(base))
		})
	}
}
