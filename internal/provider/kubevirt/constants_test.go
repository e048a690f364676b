package kubevirt

import (
	"bufio"
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	toolscache "k8s.io/client-go/tools/cache"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The types of kubevirt.io/api whose constants name what KubeVirt reports.
const (
	printableStatusType = "VirtualMachinePrintableStatus"
	vmiPhaseType        = "VirtualMachineInstancePhase"
	runStrategyType     = "VirtualMachineRunStrategy"
	vmiConditionType    = "VirtualMachineInstanceConditionType"
)

// kubevirtConstants reads the string constants of the types above from
// kubevirt.io/api's source, at the version go.mod pins: the values are
// KubeVirt's, not a list kept here.
func kubevirtConstants() (map[string]map[string]bool, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "kubevirt.io/api").Output()
	if err != nil {
		return nil, fmt.Errorf("failed to find kubevirt.io/api: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "core", "v1")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", dir, err)
	}
	fset := gotoken.NewFileSet()
	var files []*ast.File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", e.Name(), err)
		}
		files = append(files, f)
	}
	consts := map[string]map[string]bool{printableStatusType: {}, vmiPhaseType: {}, runStrategyType: {}, vmiConditionType: {}}
	for _, f := range files {
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != gotoken.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				typ, ok := vs.Type.(*ast.Ident)
				if !ok || consts[typ.Name] == nil {
					continue
				}
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == gotoken.STRING {
						s, err := strconv.Unquote(lit.Value)
						if err != nil {
							return nil, fmt.Errorf("failed to read a constant of %s: %w", typ.Name, err)
						}
						consts[typ.Name][s] = true
					}
				}
			}
		}
	}
	for typ, values := range consts {
		if len(values) == 0 {
			return nil, fmt.Errorf("failed to find the constants of %s in %s", typ, dir)
		}
	}
	return consts, nil
}

// The provider's table "From KubeVirt back to the lifecycle" names, in its
// first column, only what kubevirt.io/api defines, and has a row for every
// printableStatus, so that a status KubeVirt adds is a decision, not a gap.
func TestDocsStatusTableNamesKubeVirtsConstants(t *testing.T) {
	consts, err := kubevirtConstants()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("..", "..", "..", "docs", "kubevirt.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	named := map[string]bool{}
	section, rows := false, 0
	ticked := regexp.MustCompile("`([^`]*)`")
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			section = line == "## From KubeVirt back to the lifecycle"
			continue
		}
		if !section || !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| KubeVirt |") {
			continue
		}
		rows++
		first := strings.Split(line, "|")[1]
		for _, m := range ticked.FindAllStringSubmatch(first, -1) {
			name := strings.TrimPrefix(m[1], "runStrategy: ")
			named[name] = true
			known := false
			for _, values := range consts {
				known = known || values[name]
			}
			if !known {
				t.Errorf("docs/kubevirt.md's status table names `%s`, which is no printableStatus, VMI phase, run strategy or VMI condition of kubevirt.io/api", m[1])
			}
		}
	}
	if rows < 10 {
		t.Fatalf("found %d rows of the status table in docs/kubevirt.md; has its heading changed?", rows)
	}
	for _, status := range sorted(consts[printableStatusType]) {
		if !named[status] {
			t.Errorf("printableStatus %q of kubevirt.io/api has no row in docs/kubevirt.md's status table", status)
		}
	}
}

// statusRecorder notes every printableStatus and VMI phase that the
// double's VMs and VMIs take during the suite.
type statusRecorder struct {
	mu       sync.Mutex
	statuses map[string]bool
	phases   map[string]bool
}

func recordStatuses(c cache.Cache) (*statusRecorder, error) {
	r := &statusRecorder{statuses: map[string]bool{}, phases: map[string]bool{}}
	note := func(obj any) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch o := obj.(type) {
		case *kubevirtv1.VirtualMachine:
			r.statuses[string(o.Status.PrintableStatus)] = true
		case *kubevirtv1.VirtualMachineInstance:
			r.phases[string(o.Status.Phase)] = true
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{AddFunc: note, UpdateFunc: func(_, obj any) { note(obj) }}
	for _, obj := range []client.Object{&kubevirtv1.VirtualMachine{}, &kubevirtv1.VirtualMachineInstance{}} {
		inf, err := c.GetInformer(context.Background(), obj)
		if err != nil {
			return nil, fmt.Errorf("failed to watch %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, fmt.Errorf("failed to watch %T: %w", obj, err)
		}
	}
	return r, nil
}

// check returns what the double wrote that kubevirt.io/api does not define
// (an empty status or phase is KubeVirt's too: not reported yet).
func (r *statusRecorder) check(consts map[string]map[string]bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for s := range r.statuses {
		if s != "" && !consts[printableStatusType][s] {
			bad = append(bad, "VM printableStatus "+strconv.Quote(s))
		}
	}
	for p := range r.phases {
		if p != "" && !consts[vmiPhaseType][p] {
			bad = append(bad, "VMI phase "+strconv.Quote(p))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("the KubeVirt double wrote what kubevirt.io/api does not define: %s", strings.Join(bad, ", "))
	}
	return nil
}

func sorted(set map[string]bool) []string {
	var out []string
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
