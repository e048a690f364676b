package kubevirt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeCatalog(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadCatalogLaysTheFileOverTheDefaults(t *testing.T) {
	cat, err := LoadCatalog(writeCatalog(t, `
instanceTypes:
  g1-xlarge: {cpu: 16, memory: 128Gi}
  /v1/regions/us-texas-1/zones/us1-b/instance-types/g1-xlarge: {instancetype: u1.2xlarge}
images:
  debian-13: {http: "https://cloud.debian.org/debian-13.qcow2", sizeGb: 10}
gpuTypes:
  b200: {deviceName: nvidia.com/GB200}
networks:
  storage-net: {networkName: infra/storage, guestVLANs: true}
subnets:
  subnet-a1b2c3: {ipv4PrefixLength: 20}
storageClassName: ceph-block
`))
	if err != nil {
		t.Fatal(err)
	}
	if it := cat.InstanceTypes["g1-xlarge"]; it.CPU != 16 || it.Memory != "128Gi" {
		t.Errorf("g1-xlarge = %+v, want the file's", it)
	}
	if it, ok := lookup(cat.InstanceTypes, "/v1/regions/us-texas-1/zones/us1-b/instance-types/g1-xlarge"); !ok || it.Instancetype != "u1.2xlarge" {
		t.Errorf("the zonal URI entry = %+v, want it to win over the name", it)
	}
	if it, _ := lookup(cat.InstanceTypes, "/v1/regions/us-texas-1/zones/us1-a/instance-types/g1-xlarge"); it.CPU != 16 {
		t.Errorf("another zone's g1-xlarge = %+v, want the name's entry", it)
	}
	if _, ok := cat.Images["ubuntu-24.04-20260202-3"]; !ok {
		t.Error("the default image is gone")
	}
	if cat.GPUTypes["h100-80gb"].DeviceName != "nvidia.com/GH100_H100_SXM5_80GB" || cat.GPUTypes["b200"].DeviceName != "nvidia.com/GB200" {
		t.Errorf("gpuTypes = %+v", cat.GPUTypes)
	}
	if cat.Networks["storage-net"].NetworkName != "infra/storage" || cat.Subnets["subnet-a1b2c3"].IPv4PrefixLength != 20 || cat.StorageClassName != "ceph-block" {
		t.Errorf("catalog = %+v", cat)
	}
}

func TestLoadCatalogRefusesMistakes(t *testing.T) {
	for name, tc := range map[string]struct{ body, want string }{
		"unknown field":             {"instanceType: {}\n", "unknown field"},
		"both instancetype and cpu": {"instanceTypes: {x: {instancetype: a, cpu: 2, memory: 1Gi}}\n", "not both"},
		"cpu without memory":        {"instanceTypes: {x: {cpu: 2}}\n", "needs instancetype, or both cpu and memory"},
		"bad memory":                {"instanceTypes: {x: {cpu: 2, memory: lots}}\n", "instanceTypes[x].memory"},
		"bad kind":                  {"instanceTypes: {x: {instancetype: a, kind: Flavor}}\n", "instanceTypes[x].kind"},
		"image with two sources":    {"images: {x: {registry: 'docker://a/b', http: 'https://a/b'}}\n", "exactly one of registry and http"},
		"registry without scheme":   {"images: {x: {registry: 'quay.io/a/b'}}\n", "docker://"},
		"bad device name":           {"gpuTypes: {x: {deviceName: H100}}\n", "gpuTypes[x].deviceName"},
		"bad prefix":                {"subnets: {x: {ipv4PrefixLength: 40}}\n", "subnets[x]"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadCatalog(writeCatalog(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := LoadCatalog(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing catalog file loaded")
	}
}

func TestDefaultCatalogIsValid(t *testing.T) {
	cat, err := LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	if err := cat.Validate(); err != nil {
		t.Fatal(err)
	}
}
