package api

import (
	"encoding/json"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The contract's rules as regexps, the oracles of validID and validScope.
var (
	idPattern    = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	scopePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// The seed corpora of these targets run in every `go test`; `go test -fuzz
// FuzzParsePath ./internal/api/` explores further.

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances",
		"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/instance-d4e5f6",
		"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/instance-d4e5f6:stop",
		"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/instance-d4e5f6:explode",
		"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/:stop",
		"/v1/regions/us-texas-1/projects/project-x9y8z7/compute/instances/Bad_ID",
		"/v1/regions//projects/p/compute/instances/x",
		"/v1/regions/../projects/../compute/instances/x",
		"/v1/regions/r/projects/p/compute/instances/a/b",
		"/v1/regions/r/projects/p/compute/instances/",
		"/v1/regions/r/projects/p/compute/instances/x:stop:stop",
		"/v2/", "", "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		r, ok := parsePath(path)
		if !ok {
			return
		}
		if r.region == "" || r.project == "" {
			t.Fatalf("%q parsed with an empty region or project: %+v", path, r)
		}
		if !slices.Contains([]string{"", methodStop, methodStart, methodSuspend, methodResume}, r.custom) {
			t.Fatalf("%q parsed to unknown custom method %q", path, r.custom)
		}
		rebuilt := "/v1/regions/" + r.region + "/projects/" + r.project + "/compute/instances"
		if r.id != "" {
			rebuilt += "/" + r.id
			if r.custom != "" {
				rebuilt += ":" + r.custom
			}
		}
		if rebuilt != path {
			t.Fatalf("%q parsed to %+v, which rebuilds as %q", path, r, rebuilt)
		}
		if r.valid && (!validScope(r.region) || !validScope(r.project) || (r.id != "" && !idPattern.MatchString(r.id))) {
			t.Fatalf("%q is marked valid: %+v", path, r)
		}
	})
}

func FuzzParsePage(f *testing.F) {
	for _, s := range []string{
		"", "pageSize=3", "pageSize=0", "pageSize=-1", "pageSize=501", "pageSize=abc", "pageSize=1&pageSize=2",
		"pageToken=" + encodePageToken("list-01"), "pageToken=%25%25", "pageToken=", "pageSize=500&pageToken=" + encodePageToken("a"),
		"pageToken=" + encodePageTokenRaw("v1:Bad_ID"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		size, after, perr := parsePage(q)
		if perr != nil {
			if perr.status != 400 {
				t.Fatalf("%q: status %d", query, perr.status)
			}
			return
		}
		if size < 1 || size > maxPageSize {
			t.Fatalf("%q: size %d accepted", query, size)
		}
		if after != "" {
			if !idPattern.MatchString(after) {
				t.Fatalf("%q: token decodes to %q", query, after)
			}
			if got, err := decodePageToken(encodePageToken(after)); err != nil || got != after {
				t.Fatalf("%q: token does not round-trip", query)
			}
		}
	})
}

func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{
		`{"type":"/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge"}`,
		`{"id":"a","type":"t","labels":{"k":"v"},"instanceMetadata":[{"key":"ssh-keys","value":"x"}],"disks":[{"sizeGb":1,"boot":true}],"nics":[{"vlan":3}],"gpus":[{"type":"g","count":1}]}`,
		`{"type":42}`, `{"type":"t","colour":"blue"}`, `{"type":"t","uid":"x"}`, `{"id":"Bad_ID","type":"t"}`,
		`{"type":"t","labels":{"a/b":"c"}}`, `[1]`, `null`, `{"type":`, `{"type":"t"} {}`, `"x"`,
		`{"type":"t","type":"u"}`, `{"type":"t","labels":{"a":"1","a":"2"}}`, `{"Type":"t"}`, "{\"type\":\"t\",\"description\":\"a\\u0000b\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, aerr := decodeCreate(body)
		if aerr != nil {
			if aerr.status != 400 || aerr.message == "" {
				t.Fatalf("%q: error %+v", body, aerr)
			}
			return
		}
		if req.Type == "" {
			t.Fatalf("%q: accepted without a type", body)
		}
		if req.ID != "" && !idPattern.MatchString(req.ID) {
			t.Fatalf("%q: accepted id %q", body, req.ID)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, aerr := decodeCreate(again)
		if aerr != nil || !reflect.DeepEqual(normalize(req), normalize(req2)) {
			t.Fatalf("%q: re-encoding is not accepted as the same request: %v", body, aerr)
		}
	})
}

// normalize maps empty collections to nil: omitempty drops them on re-encoding.
func normalize(r *CreateRequest) CreateRequest {
	c := *r
	if len(c.Labels) == 0 {
		c.Labels = nil
	}
	if len(c.InstanceMetadata) == 0 {
		c.InstanceMetadata = nil
	}
	if len(c.Disks) == 0 {
		c.Disks = nil
	}
	if len(c.NICs) == 0 {
		c.NICs = nil
	}
	if len(c.GPUs) == 0 {
		c.GPUs = nil
	}
	return c
}

func FuzzDecodePatch(f *testing.F) {
	for _, s := range []string{
		`{"displayName":"x"}`, `{"description":null}`, `{"labels":{"env":"prod"}}`, `{"labels":null}`,
		`{"instanceMetadata":[{"key":"k","value":"v"}]}`, `{"instanceMetadata":[{"key":"k","colour":"v"}]}`,
		`{"type":"t"}`, `{"colour":"blue"}`, `{"displayName":42}`, `[1,2,3]`, "{\"displayName\":\"a\x00b\"", `{}`, `null`,
		`{"labels":{"a":"1","a":null}}`, `{"description":"a","description":"b"}`, `{"instanceMetadata":[{"key":"a","key":"b"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, aerr := decodePatch(body)
		if aerr != nil {
			if aerr.status != 400 || aerr.message == "" {
				t.Fatalf("%q: error %+v", body, aerr)
			}
			return
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("%q: accepted but not a JSON object: %v", body, err)
		}
		for k := range raw {
			if !slices.Contains(patchableFields, k) {
				t.Fatalf("%q: accepted field %q", body, k)
			}
		}
		if (p.DisplayName != nil) != (raw["displayName"] != nil) || (p.Labels != nil) != (raw["labels"] != nil) {
			t.Fatalf("%q: parsed %+v", body, p)
		}
		if p.ClearLabels && len(p.Labels) != 0 {
			t.Fatalf("%q: parsed %+v", body, p)
		}
	})
}

// FuzzValidators: the fast validators agree with the contract's patterns.
func FuzzValidators(f *testing.F) {
	for _, s := range []string{"a", "instance-d4e5f6", "1abc", "-a", "a-", "A", "a_b", "", "us-texas-1", strings.Repeat("a", 63), strings.Repeat("a", 64), "a\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validID(s), len(s) <= 63 && idPattern.MatchString(s); got != want {
			t.Fatalf("validID(%q) = %v, the pattern says %v", s, got, want)
		}
		if got, want := validScope(s), len(s) <= 63 && scopePattern.MatchString(s); got != want {
			t.Fatalf("validScope(%q) = %v, the pattern says %v", s, got, want)
		}
	})
}
