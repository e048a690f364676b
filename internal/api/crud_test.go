package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	computev1alpha1 "github.com/k0rdent-ai/instance-operator/api/v1alpha1"
)

const typeURI = "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge"

func getResource(t testing.TB, id string) (*computev1alpha1.Instance, error) {
	t.Helper()
	var in computev1alpha1.Instance
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: projectNS, Name: id}, &in)
	return &in, err
}

func cleanupInstance(t *testing.T, id string) {
	t.Cleanup(func() {
		in, err := getResource(t, id)
		if err == nil {
			_ = env.Client.Delete(context.Background(), in)
		}
	})
}

func TestCreate(t *testing.T) {
	t.Run("with an id; a GET right after finds it", func(t *testing.T) {
		cleanupInstance(t, "created-1")
		r := call(t, http.MethodPost, collectionPath, tokens["deployer"], map[string]any{
			"id": "created-1", "displayName": "first", "description": "made by the test",
			"labels": map[string]string{"team": "ml"}, "type": typeURI,
			"instanceMetadata": []map[string]string{{"key": "ssh-keys", "value": "admin:ssh-ed25519 AAAA admin@host"}},
			"disks":            []map[string]any{{"sizeGb": 50, "boot": true, "source": "/v1/regions/us-texas-1/compute/images/ubuntu-24.04-20260202-3"}},
			"gpus":             []map[string]any{{"type": "/v1/regions/us-texas-1/gpu-types/h100-80gb", "count": 2}},
		})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
		var got Instance
		r.json(t, &got)
		if got.ID != "created-1" || got.Lifecycle.Status != computev1alpha1.LifecycleProvisioning || got.UID == "" ||
			got.SelfLink != instancePath("created-1") || got.Labels["team"] != "ml" || got.Disks[0].Mode != computev1alpha1.DiskModeReadWrite {
			t.Errorf("created instance = %+v", got)
		}
		if loc := r.Header.Get("Location"); loc != instancePath("created-1") {
			t.Errorf("Location = %q", loc)
		}
		// Immediately: the cache may not have it yet; the live fallback does.
		g := call(t, http.MethodGet, instancePath("created-1"), tokens["deployer"], nil)
		if g.StatusCode != http.StatusOK {
			t.Fatalf("GET right after create = %d: %s", g.StatusCode, g.body)
		}
		res, err := getResource(t, "created-1")
		if err != nil {
			t.Fatal(err)
		}
		if by := res.Annotations[computev1alpha1.CreatedByAnnotation]; by != "system:serviceaccount:"+saNS+":deployer" {
			t.Errorf("created-by = %q", by)
		}
		if res.Spec.PowerState != computev1alpha1.PowerStateRunning {
			t.Errorf("powerState = %q", res.Spec.PowerState)
		}
		if !slices.Equal(res.Finalizers, []string{computev1alpha1.Finalizer}) {
			t.Errorf("finalizers = %v, want the operator's from the create", res.Finalizers)
		}
	})
	t.Run("without an id the server makes one", func(t *testing.T) {
		r := call(t, http.MethodPost, collectionPath, tokens["deployer"], map[string]any{"type": typeURI})
		if r.StatusCode != http.StatusCreated {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
		var got Instance
		r.json(t, &got)
		cleanupInstance(t, got.ID)
		if !strings.HasPrefix(got.ID, "instance-") || !idPattern.MatchString(got.ID) {
			t.Errorf("generated id = %q", got.ID)
		}
	})
	t.Run("an id taken is 409", func(t *testing.T) {
		cleanupInstance(t, "created-twice")
		body := map[string]any{"id": "created-twice", "type": typeURI}
		if r := call(t, http.MethodPost, collectionPath, tokens["deployer"], body); r.StatusCode != http.StatusCreated {
			t.Fatalf("first create = %d: %s", r.StatusCode, r.body)
		}
		call(t, http.MethodPost, collectionPath, tokens["deployer"], body).envelope(t, http.StatusConflict, ReasonAlreadyExists)
	})
	t.Run("the API server's field violations come back as BadRequest", func(t *testing.T) {
		e := call(t, http.MethodPost, collectionPath, tokens["deployer"], map[string]any{
			"id": "bad-fields", "type": "g1-xlarge",
			"disks": []map[string]any{{"sizeGb": 10, "boot": true}, {"sizeGb": 10, "boot": true}},
		}).envelope(t, http.StatusBadRequest, ReasonInvalidArgument)
		v := e.violations()
		if !slices.Contains(v, "type") || !slices.Contains(v, "disks") {
			t.Errorf("violations = %v; body %+v", v, e)
		}
		if !strings.Contains(e.Error.Message, "type must be an instance type URI") {
			t.Errorf("message = %q", e.Error.Message)
		}
		if _, err := getResource(t, "bad-fields"); !apierrors.IsNotFound(err) {
			t.Errorf("a refused instance exists: %v", err)
		}
	})
	for name, tc := range map[string]struct {
		body, field, reason string
	}{
		"missing type":           {`{"displayName":"x"}`, "type", ReasonInvalidArgument},
		"unknown field":          {`{"type":"` + typeURI + `","colour":"blue"}`, "colour", ReasonInvalidArgument},
		"read-only field":        {`{"type":"` + typeURI + `","uid":"x"}`, "uid", ReasonInvalidArgument},
		"wrong field type":       {`{"type":42}`, "type", ReasonInvalidArgument},
		"bad id":                 {`{"id":"Bad_ID","type":"` + typeURI + `"}`, "id", ReasonInvalidArgument},
		"prefixed label":         {`{"type":"` + typeURI + `","labels":{"example.com/x":"y"}}`, "labels", ReasonInvalidArgument},
		"invalid json":           {`{"type":`, "", ReasonMalformedRequestBody},
		"array body":             {`[1,2]`, "", ReasonMalformedRequestBody},
		"two objects":            {`{"type":"` + typeURI + `"} {}`, "", ReasonMalformedRequestBody},
		"deep json":              {strings.Repeat("[", 20000) + strings.Repeat("]", 20000), "", ReasonMalformedRequestBody},
		"bad metadata item":      {`{"type":"` + typeURI + `","instanceMetadata":[{"key":"k","colour":"x"}]}`, "instanceMetadata[0].colour", ReasonInvalidArgument},
		"type of another region": {`{"type":"/v1/regions/eu-west-1/zones/eu1-a/instance-types/g1-xlarge"}`, "type", ReasonInvalidArgument},
		"image of another region": {`{"type":"` + typeURI + `","disks":[{"sizeGb":10,"boot":true,"source":"/v1/regions/eu-west-1/compute/images/ubuntu"}]}`,
			"disks[0].source", ReasonInvalidArgument},
		"network of another project": {`{"type":"` + typeURI + `","nics":[{},{"network":"/v1/regions/` + region + `/projects/someone-else/compute/networks/n1"}]}`,
			"nics[1].network", ReasonInvalidArgument},
		"gpu type of another region": {`{"type":"` + typeURI + `","gpus":[{"type":"/v1/regions/eu-west-1/gpu-types/h100-80gb","count":1}]}`,
			"gpus[0].type", ReasonInvalidArgument},
	} {
		t.Run(name, func(t *testing.T) {
			e := call(t, http.MethodPost, collectionPath, tokens["deployer"], tc.body).envelope(t, http.StatusBadRequest, tc.reason)
			if tc.field != "" && !slices.Contains(e.violations(), tc.field) {
				t.Errorf("violations = %v, want %s", e.violations(), tc.field)
			}
		})
	}
	t.Run("wrong content type is 415", func(t *testing.T) {
		call(t, http.MethodPost, collectionPath, tokens["deployer"], `type=x`, "Content-Type", "text/plain").
			envelope(t, http.StatusUnsupportedMediaType, ReasonUnsupportedMediaType)
		call(t, http.MethodPost, collectionPath, tokens["deployer"], `{}`, "Content-Type", "").
			envelope(t, http.StatusUnsupportedMediaType, ReasonUnsupportedMediaType)
	})
	t.Run("a body over the limit is 413", func(t *testing.T) {
		huge := `{"type":"` + typeURI + `","description":"` + strings.Repeat("a", int(srv.opts.MaxBodyBytes)) + `"}`
		call(t, http.MethodPost, collectionPath, tokens["deployer"], huge).envelope(t, http.StatusRequestEntityTooLarge, ReasonRequestTooLarge)
	})
}

func TestList(t *testing.T) {
	// A project of its own, so that other tests' instances do not interfere.
	ns, reg, proj := "list-ns", "us-texas-1", "project-list"
	if err := createProjectNamespace(ns, reg, proj); err != nil {
		t.Fatal(err)
	}
	if err := bindRole(context.Background(), ns, "ServiceAccount", "viewer", "compute.viewer"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 7 {
		in := seedInstance(fmt.Sprintf("list-%02d", i))
		in.Namespace = ns
		createWithStatus(t, in, runningStatus())
		ids = append(ids, in.Name)
	}
	base := "/v1/regions/" + reg + "/projects/" + proj + "/compute/instances"
	// The cache catches up with the creations.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var page InstanceList
		call(t, http.MethodGet, base, tokens["viewer"], nil).json(t, &page)
		if len(page.Instances) == len(ids) {
			if page.NextPageToken != "" {
				t.Errorf("one page holds all, yet nextPageToken = %q", page.NextPageToken)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list has %d instances, want %d", len(page.Instances), len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var seen []string
	token := ""
	pages := 0
	for {
		path := base + "?pageSize=3"
		if token != "" {
			path += "&pageToken=" + token
		}
		r := call(t, http.MethodGet, path, tokens["viewer"], nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
		var page InstanceList
		r.json(t, &page)
		pages++
		for _, in := range page.Instances {
			seen = append(seen, in.ID)
			if in.SelfLink != base+"/"+in.ID {
				t.Errorf("selfLink = %q", in.SelfLink)
			}
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
	}
	if pages != 3 || !slices.Equal(seen, ids) {
		t.Errorf("pages = %d, ids = %v, want 3 pages of %v", pages, seen, ids)
	}
	for name, q := range map[string]string{
		"zero size":     "?pageSize=0",
		"negative size": "?pageSize=-1",
		"too large":     "?pageSize=501",
		"not a number":  "?pageSize=abc",
		"twice":         "?pageSize=1&pageSize=2",
	} {
		t.Run(name, func(t *testing.T) {
			call(t, http.MethodGet, base+q, tokens["viewer"], nil).envelope(t, http.StatusBadRequest, ReasonInvalidPageSize)
		})
	}
	for name, q := range map[string]string{
		"garbage":    "?pageToken=%25%25%25not-a-token",
		"not ours":   "?pageToken=" + encodePageTokenRaw("x1:list-01"),
		"bad id":     "?pageToken=" + encodePageTokenRaw(pageTokenPrefix+"Bad_ID"),
		"over sized": "?pageToken=" + strings.Repeat("A", 200),
	} {
		t.Run("token "+name, func(t *testing.T) {
			call(t, http.MethodGet, base+q, tokens["viewer"], nil).envelope(t, http.StatusBadRequest, ReasonInvalidPageToken)
		})
	}
	t.Run("max size", func(t *testing.T) {
		var page InstanceList
		call(t, http.MethodGet, base+"?pageSize=500", tokens["viewer"], nil).json(t, &page)
		if len(page.Instances) != len(ids) {
			t.Errorf("got %d", len(page.Instances))
		}
	})
}

func TestPatch(t *testing.T) {
	in := seedInstance("instance-patch")
	createWithStatus(t, in, runningStatus())
	path := instancePath("instance-patch")

	r := call(t, http.MethodPatch, path, tokens["deployer"], map[string]any{
		"displayName": "renamed", "description": nil,
		"labels":           map[string]any{"env": "prod", "property1": nil},
		"instanceMetadata": []map[string]string{{"key": "startup-script", "value": "echo hi"}},
	})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("status = %d: %s", r.StatusCode, r.body)
	}
	var got Instance
	r.json(t, &got)
	if got.DisplayName != "renamed" || got.Description != "" || len(got.Labels) != 2 || got.Labels["env"] != "prod" || got.Labels["property2"] != "string" ||
		len(got.InstanceMetadata) != 1 || got.InstanceMetadata[0].Key != "startup-script" {
		t.Errorf("patched = %+v", got)
	}
	res, err := getResource(t, "instance-patch")
	if err != nil {
		t.Fatal(err)
	}
	if res.Labels["app.kubernetes.io/managed-by"] != "argocd" {
		t.Errorf("a tooling label was lost: %v", res.Labels)
	}
	if res.Spec.DisplayName != "renamed" {
		t.Errorf("resource displayName = %q", res.Spec.DisplayName)
	}

	for _, field := range []string{"type", "hostname", "disks", "nics", "gpus", "id", "uid", "lifecycle"} {
		t.Run("field "+field+" is refused", func(t *testing.T) {
			e := call(t, http.MethodPatch, path, tokens["deployer"], `{"`+field+`": "x"}`).
				envelope(t, http.StatusBadRequest, ReasonFieldNotUpdatable)
			if !strings.Contains(e.Error.Message, field) || !slices.Contains(e.violations(), field) {
				t.Errorf("the error does not name %s: %+v", field, e)
			}
		})
	}
	for name, body := range map[string]string{
		"unknown field":  `{"colour":"blue"}`,
		"wrong type":     `{"displayName":42}`,
		"invalid key":    `{"instanceMetadata":[{"key":"bad key!","value":"x"}]}`,
		"array":          `[1,2,3]`,
		"nul":            "{\"displayName\":\"a\x00b\"",
		"prefixed label": `{"labels":{"example.com/x":"y"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := call(t, http.MethodPatch, path, tokens["deployer"], body)
			if r.StatusCode != http.StatusBadRequest {
				t.Fatalf("status = %d: %s", r.StatusCode, r.body)
			}
		})
	}
	t.Run("labels null removes the API's labels only", func(t *testing.T) {
		var got Instance
		call(t, http.MethodPatch, path, tokens["deployer"], `{"labels":null}`).json(t, &got)
		if len(got.Labels) != 0 {
			t.Errorf("labels = %v", got.Labels)
		}
		res, err := getResource(t, "instance-patch")
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Labels) != 1 || res.Labels["app.kubernetes.io/managed-by"] != "argocd" {
			t.Errorf("resource labels = %v", res.Labels)
		}
	})
	t.Run("field violations of a patch come back as BadRequest", func(t *testing.T) {
		e := call(t, http.MethodPatch, path, tokens["deployer"], `{"instanceMetadata":[{"key":"bad key!","value":"x"}]}`).
			envelope(t, http.StatusBadRequest, ReasonInvalidArgument)
		if v := e.violations(); len(v) != 1 || !strings.HasPrefix(v[0], "instanceMetadata[0].key") {
			t.Errorf("violations = %v", v)
		}
	})
	t.Run("merge-patch content type", func(t *testing.T) {
		r := call(t, http.MethodPatch, path, tokens["deployer"], `{"description":"via merge patch"}`, "Content-Type", "application/merge-patch+json")
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
	})
	t.Run("missing instance", func(t *testing.T) {
		call(t, http.MethodPatch, instancePath("no-such-instance"), tokens["deployer"], `{"displayName":"x"}`).
			envelope(t, http.StatusNotFound, ReasonInstanceNotFound)
	})
}

func TestPowerMethods(t *testing.T) {
	createWithStatus(t, seedInstance("instance-power"), runningStatus())
	for _, tc := range []struct {
		method string
		want   computev1alpha1.PowerState
	}{
		{"stop", computev1alpha1.PowerStateStopped},
		{"start", computev1alpha1.PowerStateRunning},
		{"suspend", computev1alpha1.PowerStateSuspended},
		{"resume", computev1alpha1.PowerStateRunning},
	} {
		t.Run(tc.method, func(t *testing.T) {
			r := call(t, http.MethodPost, instancePath("instance-power")+":"+tc.method, tokens["deployer"], nil)
			if r.StatusCode != http.StatusOK {
				t.Fatalf("status = %d: %s", r.StatusCode, r.body)
			}
			var got Instance
			r.json(t, &got)
			if got.ID != "instance-power" {
				t.Errorf("answered %+v", got)
			}
			res, err := getResource(t, "instance-power")
			if err != nil {
				t.Fatal(err)
			}
			if res.Spec.PowerState != tc.want {
				t.Errorf("powerState = %q, want %q", res.Spec.PowerState, tc.want)
			}
		})
	}
	t.Run("an empty object body is fine, fields are not", func(t *testing.T) {
		if r := call(t, http.MethodPost, instancePath("instance-power")+":stop", tokens["deployer"], `{}`); r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
		call(t, http.MethodPost, instancePath("instance-power")+":stop", tokens["deployer"], `{"force":true}`).
			envelope(t, http.StatusBadRequest, ReasonInvalidArgument)
	})
	t.Run("missing instance", func(t *testing.T) {
		call(t, http.MethodPost, instancePath("no-such-instance")+":start", tokens["deployer"], nil).
			envelope(t, http.StatusNotFound, ReasonInstanceNotFound)
	})
	t.Run("unknown custom method", func(t *testing.T) {
		call(t, http.MethodPost, instancePath("instance-power")+":explode", tokens["deployer"], nil).
			envelope(t, http.StatusNotFound, ReasonRouteNotFound)
	})
}

func TestDelete(t *testing.T) {
	in := seedInstance("instance-delete")
	// A finalizer holds it, as the reconciler's does while the machine stops.
	in.Finalizers = []string{computev1alpha1.Finalizer}
	createWithStatus(t, in, runningStatus())
	t.Cleanup(func() {
		if res, err := getResource(t, "instance-delete"); err == nil {
			res.Finalizers = nil
			_ = env.Client.Update(context.Background(), res)
		}
	})
	r := call(t, http.MethodDelete, instancePath("instance-delete"), tokens["deployer"], nil)
	if r.StatusCode != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("status = %d, body %q", r.StatusCode, r.body)
	}
	res, err := getResource(t, "instance-delete")
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletionTimestamp == nil {
		t.Fatal("the instance is not being deleted")
	}
	t.Run("a change while being deleted is 409", func(t *testing.T) {
		call(t, http.MethodPatch, instancePath("instance-delete"), tokens["deployer"], `{"displayName":"x"}`).
			envelope(t, http.StatusConflict, ReasonInstanceBeingDeleted)
	})
	t.Run("deleting again is still 204", func(t *testing.T) {
		if r := call(t, http.MethodDelete, instancePath("instance-delete"), tokens["deployer"], nil); r.StatusCode != http.StatusNoContent {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
	})
	t.Run("without a finalizer it is gone", func(t *testing.T) {
		createWithStatus(t, seedInstance("instance-gone"), runningStatus())
		if r := call(t, http.MethodDelete, instancePath("instance-gone"), tokens["deployer"], nil); r.StatusCode != http.StatusNoContent {
			t.Fatalf("status = %d: %s", r.StatusCode, r.body)
		}
		if _, err := getResource(t, "instance-gone"); !apierrors.IsNotFound(err) {
			t.Fatalf("still there: %v", err)
		}
		call(t, http.MethodDelete, instancePath("instance-gone"), tokens["deployer"], nil).
			envelope(t, http.StatusNotFound, ReasonInstanceNotFound)
	})
}
